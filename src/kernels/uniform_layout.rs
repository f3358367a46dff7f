//! Every uniform parameter block is written twice, as a Rust struct (declared with
//! [`super::uniform!`]) and as a WGSL struct in its shader. This test module compares the
//! two: the Rust side's `size_of` and `offset_of!` against the layout naga computes for the
//! WGSL struct in every rendered variant of the shader, the kernels' and the heads' own.
//! [`TABLE`] lists the pairs; a new kernel is one row, and a template with a `var<uniform>`
//! but no row fails the test.

use std::collections::{BTreeMap, BTreeSet};

use super::DeviceDesc;
use crate::gpu::AdapterKind;

/// One field of a Rust uniform struct, as [`super::uniform!`] lists it.
#[derive(Debug, Clone)]
pub(crate) struct RustField {
    /// The field name.
    pub name: &'static str,
    /// `offset_of!` the field.
    pub offset: usize,
    /// `size_of` the field's type.
    pub size: usize,
    /// The field's type as written (`u32`, `[u32; 3]`, …).
    pub ty: &'static str,
}

/// A Rust uniform struct's field list (implemented by [`super::uniform!`] in tests).
pub(crate) trait UniformLayout: Sized {
    /// Every field, in declaration order.
    fn fields() -> Vec<RustField>;
}

/// A row of [`TABLE`]: a Rust struct, the shader template (`ShaderSource::name`) that
/// reads it, and the name of the WGSL struct it must match.
struct Row {
    rust: &'static str,
    size: usize,
    fields: Vec<RustField>,
    shader: &'static str,
    wgsl: &'static str,
}

fn row<T: UniformLayout>(shader: &'static str, wgsl: &'static str) -> Row {
    Row {
        rust: std::any::type_name::<T>(),
        size: std::mem::size_of::<T>(),
        fields: T::fields(),
        shader,
        wgsl,
    }
}

/// (Rust struct, shader template, WGSL struct name) for every uniform block of the kernels
/// and of the heads' own shaders.
#[rustfmt::skip]
fn table() -> Vec<Row> {
    use super::*;
    vec![
        row::<adam::Params>("adam", "Params"),
        row::<batchnorm::StatsParams>("batchnorm1d_stats", "Params"),
        row::<batchnorm::ApplyParams>("batchnorm1d", "Params"),
        row::<batchnorm::FoldParams>("batchnorm1d_fold", "Params"),
        row::<batchnorm::BwdParams>("batchnorm1d_backward", "Params"),
        row::<norm::GradParams>("norm_affine_grad", "Params"),
        row::<blur::Params>("sepconv", "Params"),
        row::<cast::Params>("cast", "Params"),
        row::<conv2d::Params>("conv2d", "Params"),
        row::<elementwise::UnaryParams>("unary", "Params"),
        row::<elementwise::BinaryParams>("binary", "Params"),
        row::<flash_attention::Params>("flash_attention", "Params"),
        row::<gemm::Params>("gemm", "Params"),
        row::<layernorm::FwdParams>("layernorm", "Params"),
        row::<layernorm::BwdParams>("layernorm_backward", "Params"),
        row::<maxpool::Params>("maxpool", "Params"),
        row::<patch::Params>("patch_aggregate", "Params"),
        row::<peak::Params>("peak_fma", "Params"),
        row::<permute::Params>("permute", "Params"),
        row::<pyramid::Params>("pyramid", "Params"),
        row::<random::Params>("random_normal", "Params"),
        row::<reduce::Params>("reduce", "Params"),
        row::<resize::Params>("resize_bilinear", "Params"),
        row::<softmax::Params>("softmax", "Params"),
        row::<crate::heads::tokens::Params>("vit_tokens", "Params"),
        row::<crate::heads::losses::Params>("heads_loss", "Params"),
    ]
}

/// Device descriptions whose variants together cover every template and storage type.
fn descs() -> Vec<DeviceDesc> {
    let plain = DeviceDesc {
        kind: AdapterKind::Gpu,
        limits: wgpu::Limits::default(),
        features: wgpu::Features::empty(),
        subgroup_min_size: 4,
        subgroup_max_size: 128,
    };
    let full = DeviceDesc {
        kind: AdapterKind::Cpu,
        features: wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP,
        subgroup_min_size: 8,
        subgroup_max_size: 8,
        ..plain.clone()
    };
    vec![plain, full]
}

/// Every distinct rendered source per template name.
fn rendered_by_template() -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for desc in descs() {
        let heads = crate::heads::shader_variants(&desc);
        for source in super::shader_variants(&desc).into_iter().chain(heads) {
            let text = source.render().expect("every variant renders");
            out.entry(source.name).or_default().insert(text);
        }
    }
    out
}

/// `(scalar, count)` of a Rust field type as written: `u32` → (`u32`, 1), `[f32; 3]` →
/// (`f32`, 3).
fn rust_shape(ty: &str) -> (String, u32) {
    let t: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(inner) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        if let Some((scalar, n)) = inner.split_once(';') {
            return (scalar.to_string(), n.parse().unwrap_or(0));
        }
    }
    (t, 1)
}

fn scalar_name(s: naga::Scalar) -> String {
    let prefix = match s.kind {
        naga::ScalarKind::Uint => "u",
        naga::ScalarKind::Sint => "i",
        naga::ScalarKind::Float => "f",
        naga::ScalarKind::Bool => "bool",
        _ => "?",
    };
    format!("{prefix}{}", s.width as u32 * 8)
}

/// `(scalar, count)` of a WGSL type: a scalar, a vector or a fixed-size array of scalars.
fn wgsl_shape(module: &naga::Module, ty: naga::Handle<naga::Type>) -> (String, u32) {
    match &module.types[ty].inner {
        naga::TypeInner::Scalar(s) => (scalar_name(*s), 1),
        naga::TypeInner::Vector { size, scalar } => (scalar_name(*scalar), *size as u32),
        naga::TypeInner::Array {
            base,
            size: naga::ArraySize::Constant(n),
            ..
        } => {
            let (s, inner) = wgsl_shape(module, *base);
            (s, inner * n.get())
        }
        other => (format!("{other:?}"), 0),
    }
}

/// Whether a Rust field exists only to pad the struct (`_pad`, `pad1`, `_p0`, …).
fn is_padding(name: &str) -> bool {
    name.starts_with('_') || name.starts_with("pad")
}

/// The differences between a Rust struct and the WGSL struct `row.wgsl` of `text`, one
/// line each (empty: they agree).
fn compare(row: &Row, text: &str) -> Vec<String> {
    let module = match naga::front::wgsl::parse_str(text) {
        Ok(m) => m,
        Err(e) => return vec![format!("WGSL parse error: {}", e.emit_to_string(text))],
    };
    let mut problems = Vec::new();
    let Some((handle, (members, span))) = module.types.iter().find_map(|(h, t)| match &t.inner {
        naga::TypeInner::Struct { members, span } if t.name.as_deref() == Some(row.wgsl) => {
            Some((h, (members, *span)))
        }
        _ => None,
    }) else {
        return vec![format!("no WGSL struct {}", row.wgsl)];
    };
    // The struct is the shader's uniform block.
    let uniform = module
        .global_variables
        .iter()
        .any(|(_, g)| g.space == naga::AddressSpace::Uniform && g.ty == handle);
    if !uniform {
        problems.push(format!("WGSL struct {} is not a var<uniform>", row.wgsl));
    }
    if span as usize != row.size {
        problems.push(format!("size: Rust {} bytes, WGSL {span} bytes", row.size));
    }
    let ctx = module.to_ctx();
    for m in members {
        let name = m.name.as_deref().unwrap_or("?");
        if is_padding(name) {
            // Padding may be named and split differently on the two sides (`_pad: [u32; 3]`
            // against `_pad0`, `_pad1`, `_pad2`); the size and the other offsets pin it.
            continue;
        }
        let Some(field) = row.fields.iter().find(|f| f.name == name) else {
            problems.push(format!(
                "WGSL member {name} (offset {}) has no Rust field",
                m.offset
            ));
            continue;
        };
        if field.offset != m.offset as usize {
            problems.push(format!(
                "{name}: Rust offset {}, WGSL offset {}",
                field.offset, m.offset
            ));
        }
        let wgsl_size = module.types[m.ty].inner.size(ctx) as usize;
        if field.size != wgsl_size {
            problems.push(format!(
                "{name}: Rust size {}, WGSL size {wgsl_size}",
                field.size
            ));
        }
        let (rs, ws) = (rust_shape(field.ty), wgsl_shape(&module, m.ty));
        if rs != ws {
            problems.push(format!(
                "{name}: Rust type {} ({rs:?}), WGSL {ws:?}",
                field.ty
            ));
        }
    }
    for f in &row.fields {
        if !is_padding(f.name) && !members.iter().any(|m| m.name.as_deref() == Some(f.name)) {
            problems.push(format!(
                "Rust field {} (offset {}) is neither in the WGSL struct nor named as padding",
                f.name, f.offset
            ));
        }
    }
    problems
}

#[test]
fn uniform_structs_match_their_wgsl() {
    let rendered = rendered_by_template();
    let table = table();
    let mut failures = Vec::new();
    let mut checked = 0;
    for row in &table {
        let Some(texts) = rendered.get(row.shader) else {
            failures.push(format!("{}: no variant of shader {}", row.rust, row.shader));
            continue;
        };
        for text in texts {
            checked += 1;
            for p in compare(row, text) {
                failures.push(format!(
                    "{} vs {}.wgsl {}: {p}",
                    row.rust, row.shader, row.wgsl
                ));
            }
        }
    }
    // Every template with a uniform block has a row.
    for (name, texts) in &rendered {
        let text = texts.iter().next().unwrap();
        let has_uniform = naga::front::wgsl::parse_str(text)
            .map(|m| {
                m.global_variables
                    .iter()
                    .any(|(_, g)| g.space == naga::AddressSpace::Uniform)
            })
            .unwrap_or(false);
        if has_uniform && !table.iter().any(|r| r.shader == *name) {
            failures.push(format!(
                "shader {name} has a var<uniform> but no row in the table"
            ));
        }
    }
    failures.sort();
    failures.dedup();
    assert!(
        failures.is_empty(),
        "{} layout mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= table.len());
}

super::uniform! {
#[allow(dead_code)]
pub(super) struct Misplaced {
    n: u32,
    scale: f32,
    _pad: u32,
}
}

/// The comparison is not vacuous: a Rust struct whose padding sits before a field the WGSL
/// struct has after it, and which is 4 bytes short, is reported on both counts.
#[test]
fn a_wrong_padding_is_reported() {
    let text = "struct Params { n: u32, _a: u32, scale: f32, _b: u32 }\n\
                @group(0) @binding(0) var<uniform> params: Params;\n\
                @compute @workgroup_size(1) fn main() { _ = params.n; }";
    let problems = compare(&row::<Misplaced>("test", "Params"), text);
    assert!(
        problems.iter().any(|p| p.starts_with("size:")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("scale: Rust offset 4, WGSL offset 8")),
        "{problems:?}"
    );
    let right = "struct Params { n: u32, scale: f32, _pad: u32 }\n\
                 @group(0) @binding(0) var<uniform> params: Params;\n\
                 @compute @workgroup_size(1) fn main() { _ = params.n; }";
    assert_eq!(
        compare(&row::<Misplaced>("test", "Params"), right),
        Vec::<String>::new()
    );
}
