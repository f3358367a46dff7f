//! The library's typed error.
//!
//! Every failure a user can cause (a missing file, a corrupt image, a weight file of another
//! architecture, no GPU adapter, …) is reported through [`Error`] with a message that names
//! the file or tensor involved and the problem, never through a panic.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No usable GPU adapter was found (or the override matched none).
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),

    /// The GPU device reported an error (out of memory, validation, device lost, …).
    #[error("GPU error: {0}")]
    Gpu(String),

    /// The adapter lacks a capability that a requested option needs (for example
    /// `SHADER_F16` for [`Precision::F16`](crate::backbone::Precision::F16)).
    #[error("{adapter} does not support {what}")]
    Unsupported {
        /// The adapter ([`Gpu::describe`](crate::Gpu::describe)).
        adapter: String,
        /// What was asked for and what is missing.
        what: String,
    },

    /// A tensor had the wrong shape or dtype for an operation.
    #[error("shape error: {0}")]
    Shape(String),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// An image (or mask) could not be decoded or has unusable content.
    #[error("image {path}: {message}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A dataset folder does not have the expected layout or content.
    #[error("dataset {path}: {message}")]
    Dataset {
        /// The folder or file involved.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A weight file is unreadable, lacks a tensor, or a tensor has the wrong shape / dtype.
    #[error("weights {path}: {message}")]
    Weights {
        /// The weight file.
        path: PathBuf,
        /// What is wrong with it (names the tensor where one is involved).
        message: String,
    },

    /// A model file is unreadable or was written with an incompatible configuration.
    #[error("model file {path}: {message}")]
    ModelFile {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// An invalid configuration value.
    #[error("configuration: {0}")]
    Config(String),

    /// Training diverged (NaN or infinite loss) or could not proceed.
    #[error("training: {0}")]
    Training(String),

    /// A prediction could not be made (a non-finite score: never reported as a pass).
    #[error("prediction: {0}")]
    Prediction(String),

    /// An evaluation metric is undefined for its input (a single class, no anomalous
    /// region, no normal pixel, a NaN score, a constant set of scores, …).
    #[error("evaluation: {0}")]
    Eval(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
