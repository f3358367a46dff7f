//! Any GPU, shown: every kernel variant the library can build goes through naga (the
//! translator wgpu itself uses, same version) as it would on Vulkan, Metal and DX12, and the
//! kernel selection is run against the published limits of typical adapters.
//!
//! - `every_variant_translates_on_every_backend`: [`dfd::kernels::shader_variants`] and
//!   [`dfd::heads::shader_variants`] list what the selection code can produce (every
//!   tiling, staging, storage type, attention path, subgroup and plain path) for devices of
//!   each kind, with and without f16 and subgroups. Each rendered WGSL source is validated
//!   with the capabilities the backend grants for those features, then written as SPIR-V
//!   1.3 (Vulkan 1.1), MSL 2.4 (macOS 12 on Apple silicon, simdgroup operations) and HLSL
//!   shader model 6.2 (DX12 with native 16-bit types and wave operations).
//! - `selection_fits_typical_adapters`: the selection functions and every variant they lead
//!   to, checked against each adapter's workgroup-size, invocation and workgroup-memory
//!   limits and its subgroup sizes.
//!
//! No GPU is needed except for the last test, which checks that the description of the
//! device in use matches what the device reports.

use std::collections::HashMap;
use std::time::Instant;

use dfd::gpu::{AdapterKind, ShaderSource};
use dfd::kernels::DeviceDesc;
use naga::back::{hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// A shader backend of wgpu and how it configures naga's writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Vulkan,
    Metal,
    Dx12,
}

const BACKENDS: [Backend; 3] = [Backend::Vulkan, Backend::Metal, Backend::Dx12];

impl Backend {
    /// The validator capabilities wgpu derives from the device features
    /// (`wgpu-naga-bridge`: `SHADER_F16` → `SHADER_FLOAT16`, `SUBGROUP` → `SUBGROUP`),
    /// limited to what naga's writer for this backend supports.
    fn capabilities(self, desc: &DeviceDesc) -> Capabilities {
        let mut caps = Capabilities::empty();
        caps.set(Capabilities::SHADER_FLOAT16, desc.supports_f16());
        caps.set(
            Capabilities::SUBGROUP,
            desc.features.contains(wgpu::Features::SUBGROUP),
        );
        let supported = match self {
            Backend::Vulkan => spv::supported_capabilities(),
            Backend::Metal => msl::supported_capabilities(),
            Backend::Dx12 => hlsl::supported_capabilities(),
        };
        assert!(
            supported.contains(caps),
            "{self:?}: naga's writer lacks {:?}",
            caps - supported
        );
        caps
    }

    /// Writes `entry` of a validated module in this backend's language.
    fn translate(
        self,
        module: &naga::Module,
        info: &naga::valid::ModuleInfo,
        entry: &str,
        desc: &DeviceDesc,
    ) -> Result<(), String> {
        let stage = naga::ShaderStage::Compute;
        match self {
            Backend::Vulkan => {
                // The capabilities wgpu-hal's Vulkan backend allows (always-available ones plus
                // those of the device features), SPIR-V 1.3 (Vulkan 1.1, the first with
                // subgroup operations).
                use spv::Capability as C;
                let mut allowed = vec![
                    C::Shader,
                    C::Matrix,
                    C::Sampled1D,
                    C::Image1D,
                    C::ImageQuery,
                    C::DerivativeControl,
                    C::StorageImageExtendedFormats,
                ];
                if desc.features.contains(wgpu::Features::SUBGROUP) {
                    allowed.extend([
                        C::GroupNonUniform,
                        C::GroupNonUniformVote,
                        C::GroupNonUniformArithmetic,
                        C::GroupNonUniformBallot,
                        C::GroupNonUniformShuffle,
                        C::GroupNonUniformShuffleRelative,
                        C::GroupNonUniformQuad,
                    ]);
                }
                if desc.supports_f16() {
                    allowed.push(C::Float16);
                }
                let options = spv::Options {
                    lang_version: (1, 3),
                    capabilities: Some(allowed.into_iter().collect()),
                    ..Default::default()
                };
                let pipeline = spv::PipelineOptions {
                    shader_stage: stage,
                    entry_point: entry.to_string(),
                };
                spv::write_vec(module, info, &options, Some(&pipeline))
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}"))
            }
            Backend::Metal => {
                let options = msl::Options {
                    lang_version: (2, 4),
                    ..Default::default()
                };
                let pipeline = msl::PipelineOptions {
                    entry_point: Some((stage, entry.to_string())),
                    ..Default::default()
                };
                msl::write_string(module, info, &options, &pipeline)
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}"))
            }
            Backend::Dx12 => {
                let options = hlsl::Options {
                    shader_model: hlsl::ShaderModel::V6_2,
                    ..Default::default()
                };
                let pipeline = hlsl::PipelineOptions {
                    entry_point: Some((stage, entry.to_string())),
                };
                let mut out = String::new();
                hlsl::Writer::new(&mut out, &options, &pipeline)
                    .write(module, info, None)
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}"))
            }
        }
    }
}

/// A device description with the given kind, f16 and subgroup sizes (`None`: no subgroup
/// operations) and the limits of `limits`.
fn desc(
    kind: AdapterKind,
    limits: wgpu::Limits,
    f16: bool,
    subgroups: Option<(u32, u32)>,
) -> DeviceDesc {
    let mut features = wgpu::Features::TIMESTAMP_QUERY;
    if f16 {
        features |= wgpu::Features::SHADER_F16;
    }
    if subgroups.is_some() {
        features |= wgpu::Features::SUBGROUP;
    }
    let (min, max) = subgroups.unwrap_or((4, 128));
    DeviceDesc {
        kind,
        limits,
        features,
        subgroup_min_size: min,
        subgroup_max_size: max,
    }
}

/// Limits of a desktop GPU: 1024 invocations per workgroup, 48 KiB of workgroup memory.
fn desktop_limits() -> wgpu::Limits {
    wgpu::Limits {
        max_compute_workgroup_storage_size: 49152,
        max_compute_invocations_per_workgroup: 1024,
        max_compute_workgroup_size_x: 1024,
        max_compute_workgroup_size_y: 1024,
        max_compute_workgroup_size_z: 64,
        ..wgpu::Limits::default()
    }
}

/// Every variant the library can build on a device so described.
fn variants(desc: &DeviceDesc) -> Vec<ShaderSource<'static>> {
    let mut all = dfd::kernels::shader_variants(desc);
    all.extend(dfd::heads::shader_variants(desc));
    all
}

/// A rendered variant, the entry point, and the description of a device that builds it
/// with the fewest features (the strictest validation).
struct Rendered {
    name: &'static str,
    text: String,
    entry: String,
    desc: DeviceDesc,
}

fn feature_rank(d: &DeviceDesc) -> u32 {
    d.supports_f16() as u32 + d.features.contains(wgpu::Features::SUBGROUP) as u32
}

#[test]
fn every_variant_translates_on_every_backend() {
    let t0 = Instant::now();
    // Devices of each kind, with and without f16, without subgroups, with fixed subgroups
    // of 8 (lavapipe's), 16, 32 (NVIDIA's) or 64 lanes, and with varying sizes (Metal's
    // 4..64, Intel's 8..32): every branch of the selection code.
    let mut descs = Vec::new();
    for kind in [AdapterKind::Gpu, AdapterKind::Cpu] {
        for f16 in [false, true] {
            for subgroups in [
                None,
                Some((8, 8)),
                Some((16, 16)),
                Some((32, 32)),
                Some((64, 64)),
                Some((4, 64)),
                Some((8, 32)),
            ] {
                // WebGPU's default limits (16 KiB of workgroup memory) and a desktop GPU's.
                for limits in [wgpu::Limits::default(), desktop_limits()] {
                    descs.push(desc(kind, limits, f16, subgroups));
                }
            }
        }
    }
    let mut unique: HashMap<(String, String), Rendered> = HashMap::new();
    let mut produced = 0usize;
    for d in &descs {
        for source in variants(d) {
            produced += 1;
            let text = source
                .render()
                .unwrap_or_else(|e| panic!("{}: {e}", source.name));
            let key = (text, source.entry.to_string());
            match unique.get_mut(&key) {
                Some(r) if feature_rank(d) < feature_rank(&r.desc) => r.desc = d.clone(),
                Some(_) => {}
                None => {
                    unique.insert(
                        key.clone(),
                        Rendered {
                            name: source.name,
                            text: key.0,
                            entry: key.1,
                            desc: d.clone(),
                        },
                    );
                }
            }
        }
    }
    let rendered: Vec<Rendered> = unique.into_values().collect();
    let mut per_template: HashMap<&str, usize> = HashMap::new();
    for r in &rendered {
        *per_template.entry(r.name).or_default() += 1;
    }
    let mut names: Vec<_> = per_template.into_iter().collect();
    names.sort();
    println!(
        "{produced} variants listed over {} device descriptions, {} distinct",
        descs.len(),
        rendered.len()
    );
    println!("distinct variants per template: {names:?}");

    // No entry point of any template is left out of the list.
    let mut entries: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in &rendered {
        entries.entry(r.name).or_default().push(&r.entry);
    }
    for (name, listed) in &entries {
        let r = rendered.iter().find(|r| r.name == *name).unwrap();
        let module = naga::front::wgsl::parse_str(&r.text).unwrap();
        for ep in &module.entry_points {
            assert!(
                listed.contains(&ep.name.as_str()),
                "{name}: entry point {} has no variant in the list",
                ep.name
            );
        }
    }

    // Parse, validate and translate, spread over the cores.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = rendered.len().div_ceil(threads).max(1);
    let results: Vec<(Vec<usize>, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = rendered
            .chunks(chunk)
            .map(|part| s.spawn(move || check_all(part)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut counts = [0usize; 3];
    let mut failures = Vec::new();
    for (c, f) in results {
        for (total, n) in counts.iter_mut().zip(c) {
            *total += n;
        }
        failures.extend(f);
    }
    for (backend, n) in BACKENDS.iter().zip(counts) {
        println!("{backend:?}: {n} variants validated and translated");
    }
    println!("took {:.1} s", t0.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(counts.iter().all(|&n| n == rendered.len()));
}

/// Validates and translates each variant for each backend: the number that passed per
/// backend and a line per failure.
fn check_all(part: &[Rendered]) -> (Vec<usize>, Vec<String>) {
    let mut counts = vec![0; BACKENDS.len()];
    let mut failures = Vec::new();
    for r in part {
        let module = match naga::front::wgsl::parse_str(&r.text) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!(
                    "{} ({}): WGSL parse error: {}",
                    r.name,
                    r.entry,
                    e.emit_to_string(&r.text)
                ));
                continue;
            }
        };
        if !module.entry_points.iter().any(|ep| ep.name == r.entry) {
            failures.push(format!("{}: no entry point {}", r.name, r.entry));
            continue;
        }
        for (i, backend) in BACKENDS.iter().enumerate() {
            let caps = backend.capabilities(&r.desc);
            let info = match Validator::new(ValidationFlags::all(), caps).validate(&module) {
                Ok(info) => info,
                Err(e) => {
                    failures.push(format!(
                        "{} ({}) on {backend:?} with {caps:?}: {}",
                        r.name,
                        r.entry,
                        e.emit_to_string(&r.text)
                    ));
                    continue;
                }
            };
            match backend.translate(&module, &info, &r.entry, &r.desc) {
                Ok(()) => counts[i] += 1,
                Err(e) => failures.push(format!("{} ({}) on {backend:?}: {e}", r.name, r.entry)),
            }
        }
    }
    (counts, failures)
}

/// Fails when a variant needs a capability the validator was not given: shows that the
/// check above is not vacuous (an f16 variant without `SHADER_FLOAT16`, a subgroup variant
/// without `SUBGROUP`).
#[test]
fn validation_refuses_missing_capabilities() {
    let full = desc(AdapterKind::Cpu, desktop_limits(), true, Some((8, 8)));
    let rendered: Vec<(String, String)> = variants(&full)
        .iter()
        .map(|s| (s.render().unwrap(), s.entry.to_string()))
        .collect();
    let f16 = rendered
        .iter()
        .find(|(t, _)| t.contains("enable f16;"))
        .expect("an f16 variant");
    let subgroup = rendered
        .iter()
        .find(|(t, _)| t.contains("subgroupBroadcast") && !t.contains("enable f16;"))
        .expect("a subgroup variant");
    for ((text, _), missing) in [
        (f16, Capabilities::SHADER_FLOAT16),
        (subgroup, Capabilities::SUBGROUP),
    ] {
        let module = naga::front::wgsl::parse_str(text);
        let refused = match module {
            Err(_) => true,
            Ok(m) => Validator::new(
                ValidationFlags::all(),
                (Capabilities::SHADER_FLOAT16 | Capabilities::SUBGROUP) - missing,
            )
            .validate(&m)
            .is_err(),
        };
        assert!(refused, "a variant validated without {missing:?}");
    }
}

/// An adapter as its driver publishes it: the backend, the kind, the limits, the features and
/// the subgroup sizes wgpu reports.
struct Adapter {
    name: &'static str,
    desc: DeviceDesc,
}

/// Typical adapters, with the figures wgpu reports for them.
fn typical_adapters() -> Vec<Adapter> {
    let gpu_limits = |storage: u32, z: u32| wgpu::Limits {
        max_compute_workgroup_storage_size: storage,
        max_compute_invocations_per_workgroup: 1024,
        max_compute_workgroup_size_x: 1024,
        max_compute_workgroup_size_y: 1024,
        max_compute_workgroup_size_z: z,
        max_storage_buffer_binding_size: 1 << 30,
        max_buffer_size: 1 << 32,
        ..wgpu::Limits::default()
    };
    vec![
        // Apple M1 on Metal: 32 KiB threadgroup memory, 1024 threads; wgpu-hal reports
        // simdgroups as 4..64 lanes (Metal does not promise one width), so no kernel may
        // assume a width there.
        Adapter {
            name: "Apple M1 (Metal)",
            desc: desc(
                AdapterKind::Gpu,
                gpu_limits(32768, 1024),
                true,
                Some((4, 64)),
            ),
        },
        // An NVIDIA desktop GPU on Vulkan: 48 KiB shared memory, 1024 invocations, z ≤ 64,
        // subgroups of exactly 32 (subgroup size control reports 32..32).
        Adapter {
            name: "NVIDIA GeForce RTX 3080 (Vulkan)",
            desc: desc(
                AdapterKind::Gpu,
                gpu_limits(49152, 64),
                true,
                Some((32, 32)),
            ),
        },
        // An Intel iGPU on DX12 (shader model 6.x, native 16-bit ops): 32 KiB group shared
        // memory, 1024 threads, waves of 8 to 32 lanes (WaveLaneCountMin / Max).
        Adapter {
            name: "Intel UHD Graphics 770 (DX12)",
            desc: desc(AdapterKind::Gpu, gpu_limits(32768, 64), true, Some((8, 32))),
        },
        // Mesa lavapipe (llvmpipe) on Vulkan with AVX2: 64 KiB shared memory, 1024
        // invocations, subgroups of exactly 8 lanes.
        Adapter {
            name: "lavapipe (Vulkan, CPU)",
            desc: desc(
                AdapterKind::Cpu,
                gpu_limits(65536, 1024),
                true,
                Some((8, 8)),
            ),
        },
        // Any WebGPU adapter: the default limits (16 KiB, 256 invocations, z ≤ 64), no
        // f16, no subgroups.
        Adapter {
            name: "WebGPU defaults",
            desc: desc(AdapterKind::Gpu, wgpu::Limits::default(), false, None),
        },
    ]
}

/// Shapes the library runs: the presets' products and convolutions, and ragged ones.
const EXTENTS: [usize; 14] = [1, 3, 4, 5, 17, 64, 65, 100, 128, 129, 256, 520, 1025, 4096];

/// Checks one adapter; returns a line per violated limit or assumption.
fn check_adapter(a: &Adapter) -> Vec<String> {
    use dfd::heads::AttentionAlgorithm;
    use dfd::kernels::conv2d::Conv2dSpec;
    use dfd::kernels::flash_attention;
    use dfd::kernels::Tiling;
    let d = &a.desc;
    let l = &d.limits;
    let mut bad = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            bad.push(format!("{}: {what}", a.name));
        }
    };
    let lanes_ok = |lanes: Option<u32>| lanes.is_none() || lanes == d.subgroup_size();
    // GEMM tilings.
    for &m in &EXTENTS {
        for &n in &EXTENTS {
            for k in [1, 96, 1536] {
                let t = Tiling::select_gemm(d, m, n, k);
                let threads = t.invocations();
                check(
                    threads <= l.max_compute_invocations_per_workgroup
                        && threads <= l.max_compute_workgroup_size_x,
                    format!("gemm {m}x{n}x{k}: {t:?} has {threads} invocations"),
                );
                check(
                    t.workgroup_bytes() <= l.max_compute_workgroup_storage_size,
                    format!("gemm {m}x{n}x{k}: {t:?} needs {} B", t.workgroup_bytes()),
                );
                check(
                    lanes_ok(t.subgroup)
                        && t.subgroup
                            .is_none_or(|s| (t.bn / t.tn).is_multiple_of(s) && t.tm / 4 <= s),
                    format!("gemm {m}x{n}x{k}: {t:?} assumes subgroups the device lacks"),
                );
            }
        }
    }
    // Convolution tilings, over the backbone's geometries.
    for &c_out in &EXTENTS {
        for &hw in &[1usize, 4, 7, 16, 56, 64] {
            for (kk, stride, pad) in [(7, 2, 3), (3, 1, 1), (3, 2, 1), (1, 1, 0), (1, 2, 0)] {
                let spec = Conv2dSpec::new(2, 64, (hw, hw), c_out, kk, stride, pad);
                let t = Tiling::select_conv(d, &spec);
                match t.check_conv() {
                    Ok(threads) => check(
                        threads <= l.max_compute_invocations_per_workgroup
                            && threads <= l.max_compute_workgroup_size_x,
                        format!("conv {spec:?}: {t:?} has {threads} invocations"),
                    ),
                    Err(e) => check(false, format!("conv {spec:?}: {e}")),
                }
                check(
                    t.workgroup_bytes() <= l.max_compute_workgroup_storage_size,
                    format!("conv {spec:?}: {t:?} needs {} B", t.workgroup_bytes()),
                );
                check(
                    lanes_ok(t.subgroup),
                    format!("conv {spec:?}: {t:?} assumes subgroups the device lacks"),
                );
            }
        }
    }
    // Attention: the fused kernels only where their blocks fit.
    for tokens in [65, 257, 1025] {
        for head_dim in [32, 64, 96, 128, 256] {
            let algorithm = AttentionAlgorithm::select(d, tokens, head_dim);
            if algorithm == AttentionAlgorithm::Fused {
                let bytes = flash_attention::workgroup_bytes_for(head_dim);
                let threads = flash_attention::invocations_for(tokens);
                check(
                    bytes <= l.max_compute_workgroup_storage_size
                        && threads <= l.max_compute_invocations_per_workgroup,
                    format!("fused attention N {tokens} hd {head_dim}: {bytes} B, {threads} inv."),
                );
                check(
                    lanes_ok(flash_attention::broadcast_lanes(d, head_dim.div_ceil(4))),
                    format!("fused attention hd {head_dim} assumes subgroups the device lacks"),
                );
            }
        }
    }
    // Row kernels.
    for &cols in &EXTENTS {
        let wg = dfd::kernels::layernorm::row_wg(d.kind, cols);
        check(
            wg <= l.max_compute_invocations_per_workgroup,
            format!("layer norm over {cols}: {wg} invocations"),
        );
    }
    // Every variant the device can build, as compiled: workgroup sizes and memory read off
    // naga's module, subgroup operations only where the device has them.
    let caps = Backend::Vulkan.capabilities(d);
    for source in variants(d) {
        let text = source.render().unwrap();
        let what = format!("{} ({})", source.name, source.entry);
        let module = naga::front::wgsl::parse_str(&text).unwrap();
        let info = match Validator::new(ValidationFlags::all(), caps).validate(&module) {
            Ok(info) => info,
            Err(e) => {
                check(false, format!("{what}: invalid with {caps:?}: {e}"));
                continue;
            }
        };
        let (index, ep) = module
            .entry_points
            .iter()
            .enumerate()
            .find(|(_, ep)| ep.name == source.entry)
            .unwrap();
        let [x, y, z] = ep.workgroup_size;
        check(
            x * y * z <= l.max_compute_invocations_per_workgroup
                && x <= l.max_compute_workgroup_size_x
                && y <= l.max_compute_workgroup_size_y
                && z <= l.max_compute_workgroup_size_z,
            format!("{what}: workgroup size {x}×{y}×{z}"),
        );
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let ep_info = info.get_entry_point(index);
        let bytes: u32 = module
            .global_variables
            .iter()
            .filter(|(h, g)| g.space == naga::AddressSpace::WorkGroup && !ep_info[*h].is_empty())
            .map(|(_, g)| layouter[g.ty].size)
            .sum();
        check(
            bytes <= l.max_compute_workgroup_storage_size,
            format!("{what}: {bytes} B of workgroup memory"),
        );
    }
    bad
}

/// The selection run against each typical adapter's published limits: every tiling,
/// attention path and workgroup size it picks fits them, and every variant it leads to
/// compiles within them.
#[test]
fn selection_fits_typical_adapters() {
    let mut bad = Vec::new();
    for a in typical_adapters() {
        let n = variants(&a.desc).len();
        let found = check_adapter(&a);
        println!("{}: {n} variants, {} problems", a.name, found.len());
        bad.extend(found);
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The description of the device in use (lavapipe here) says what the device does, and the
/// selection through it chooses as the device-side functions do.
#[test]
fn device_description_matches_the_device() {
    use dfd::heads::AttentionAlgorithm;
    use dfd::kernels::conv2d::Conv2dSpec;
    use dfd::kernels::Tiling;
    let g = dfd::testing::gpu();
    let d = DeviceDesc::of(&g);
    assert_eq!(d.subgroup_size(), g.subgroup_size());
    assert_eq!(d.supports_f16(), g.supports_f16());
    assert_eq!(d.kind, g.kind());
    for &m in &EXTENTS {
        for &n in &EXTENTS {
            assert_eq!(
                Tiling::choose_gemm(&g, m, n, 96),
                Tiling::select_gemm(&d, m, n, 96)
            );
            let spec = Conv2dSpec::new(1, 16, (m.min(64), m.min(64)), n, 3, 1, 1);
            assert_eq!(
                Tiling::choose_conv(&g, &spec),
                Tiling::select_conv(&d, &spec)
            );
        }
    }
    if g.options().attention.is_none() {
        for (tokens, hd) in [(65, 64), (1025, 96), (65, 4096)] {
            assert_eq!(
                AttentionAlgorithm::for_gpu(&g, tokens, hd).unwrap(),
                AttentionAlgorithm::select(&d, tokens, hd)
            );
        }
    }
    let found = check_adapter(&Adapter {
        name: "this device",
        desc: d,
    });
    assert!(found.is_empty(), "{}", found.join("\n"));
}
