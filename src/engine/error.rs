//! Why a run stopped, sorted by what the user must do about it (and the exit code it gets).

use crate::staging::StagingError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The pipeline or project is wrong: fix the file.
    #[error("{0}")]
    Config(String),
    /// A system could not be reached or refused the sign-in.
    #[error("{0}")]
    Connection(String),
    #[error("staging: {0}")]
    Staging(#[from] StagingError),
}

impl EngineError {
    /// 2 for configuration, 3 for connection or sign-in, 1 otherwise (as the README lists).
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Config(_) => 2,
            EngineError::Connection(_) => 3,
            EngineError::Staging(_) => 1,
        }
    }
}
