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
