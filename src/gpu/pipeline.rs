//! The pipeline cache: every kernel variant is compiled once per device.
//!
//! Kernels are WGSL templates (`shaders/*.wgsl`, embedded with `include_str!`). A variant is
//! the template with its `{{NAME}}` placeholders replaced by values (tile sizes, the storage
//! type, transpose flags, the epilogue). The cache key is the template's name plus the
//! substitutions, so asking twice for one variant returns the same compiled pipeline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Gpu;
use crate::{Error, Result};

/// A WGSL template and the substitutions that make one variant of it.
#[derive(Debug, Clone)]
pub struct ShaderSource<'a> {
    /// Template name, used in the cache key and in error messages (e.g. `"gemm"`).
    pub name: &'static str,
    /// The template text.
    pub template: &'static str,
    /// `{{KEY}}` → value substitutions.
    pub defines: Vec<(&'static str, String)>,
    /// Entry point.
    pub entry: &'a str,
    /// Access of the storage buffers at bindings 1, 2, … (binding 0 is the uniform
    /// parameter block). The layout is explicit rather than derived from the shader, so a
    /// variant that does not touch an optional buffer (say, no bias) keeps the same bindings.
    pub storage: Vec<Access>,
}

/// How a kernel accesses one of its storage buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
}

impl<'a> ShaderSource<'a> {
    /// A template with entry point `main` and no substitutions yet.
    pub fn new(name: &'static str, template: &'static str) -> Self {
        ShaderSource {
            name,
            template,
            defines: Vec::new(),
            entry: "main",
            storage: Vec::new(),
        }
    }

    /// Declares the storage bindings 1, 2, … in order.
    pub fn storage(mut self, access: &[Access]) -> Self {
        self.storage = access.to_vec();
        self
    }

    /// Adds a substitution.
    pub fn define(mut self, key: &'static str, value: impl ToString) -> Self {
        self.defines.push((key, value.to_string()));
        self
    }

    /// Selects another entry point.
    pub fn entry(mut self, entry: &'a str) -> Self {
        self.entry = entry;
        self
    }

    fn key(&self) -> String {
        // The template is a `&'static str` (from `include_str!`): its address identifies it,
        // so two templates given the same name never share a cache entry.
        let mut key = format!(
            "{}@{:p}+{}:{}",
            self.name,
            self.template.as_ptr(),
            self.template.len(),
            self.entry
        );
        for (k, v) in &self.defines {
            key.push_str(&format!(";{k}={v}"));
        }
        key.push_str(&format!(";storage={:?}", self.storage));
        key
    }

    /// The WGSL text of this variant. Fails if a placeholder is left unreplaced.
    pub fn render(&self) -> Result<String> {
        let mut text = self.template.to_string();
        for (k, v) in &self.defines {
            text = text.replace(&format!("{{{{{k}}}}}"), v);
        }
        if let Some(pos) = text.find("{{") {
            let end = text[pos..]
                .find("}}")
                .map(|e| pos + e + 2)
                .unwrap_or(text.len());
            return Err(Error::Gpu(format!(
                "shader {}: placeholder {} has no value",
                self.name,
                &text[pos..end]
            )));
        }
        Ok(text)
    }
}

/// A compiled compute pipeline and its bind-group layout.
pub struct Kernel {
    /// The cache key (template, entry point and substitutions); names the variant in errors.
    pub(crate) name: String,
    /// Template name, plus the entry point when it is not `main`: how profiles group it.
    pub(crate) label: String,
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernel({})", self.name)
    }
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    kernels: Mutex<HashMap<String, Arc<Kernel>>>,
}

impl Gpu {
    /// Returns the compiled pipeline for a shader variant, compiling it on first use.
    ///
    /// Compilation errors (a bug in a template) come back as [`Error::Gpu`] with the
    /// compiler's message instead of aborting the process.
    pub fn kernel(&self, source: &ShaderSource<'_>) -> Result<Arc<Kernel>> {
        let key = source.key();
        if let Some(k) = self
            .inner
            .pipelines
            .kernels
            .lock()
            .expect("cache poisoned")
            .get(&key)
        {
            return Ok(k.clone());
        }
        let text = source.render()?;
        let device = self.device();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let descriptor = wgpu::ShaderModuleDescriptor {
            label: Some(source.name),
            source: wgpu::ShaderSource::Wgsl(text.into()),
        };
        let module = if self.inner.options.shader_checks {
            device.create_shader_module(descriptor)
        } else {
            // SAFETY: every wrapper validates its operands' shapes and binding ranges before
            // recording a dispatch, and every kernel masks its own edges, so the kernels only
            // index inside their bindings and all loops are bounded by uniform sizes. Without
            // naga's injected bounds clamps and loop-bounding counters, the drivers can unroll
            // and vectorise the inner loops (`docs/bench-notes.md`, "Shader checks").
            // `GpuOptions::shader_checks` turns the checks back on for debugging.
            unsafe {
                device.create_shader_module_trusted(
                    descriptor,
                    wgpu::ShaderRuntimeChecks::unchecked(),
                )
            }
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, access) in source.storage.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *access == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(source.name),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(source.name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(source.name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(source.entry),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!(
                "shader {} failed to compile: {err}",
                key
            )));
        }
        let label = if source.entry == "main" {
            source.name.to_string()
        } else {
            format!("{}:{}", source.name, source.entry)
        };
        let kernel = Arc::new(Kernel {
            name: key.clone(),
            label,
            pipeline,
            layout,
        });
        self.inner
            .pipelines
            .kernels
            .lock()
            .expect("cache poisoned")
            .insert(key, kernel.clone());
        Ok(kernel)
    }

    /// Number of compiled kernel variants.
    pub fn compiled_kernels(&self) -> usize {
        self.inner
            .pipelines
            .kernels
            .lock()
            .expect("cache poisoned")
            .len()
    }
}
