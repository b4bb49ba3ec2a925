//! One error type for the whole engine. Every message is a single line that names
//! what is wrong and where (file, row, column, node or definition line).

use std::fmt;

#[derive(Debug)]
pub struct Error {
    message: String,
    kind: ErrorKind,
}

/// What went wrong, as far as the exit status tells: ehrQL's exit codes, so that a
/// job runner reports an ehrfusion failure as it would an ehrQL one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Anything else (exit 1).
    Other,
    /// Bad command-line arguments (exit 2, as for an unknown flag).
    Usage,
    /// A mistake in or with the definition file (exit 10).
    Definition,
    /// An input file that cannot be read or does not match its table (exit 11).
    File,
    /// A restricted table used without the permission for it (exit 12).
    Permission,
    /// The definition's own test data did not give the expected results (exit 13).
    Assurance,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Other => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Definition => 10,
            ErrorKind::File => 11,
            ErrorKind::Permission => 12,
            ErrorKind::Assurance => 13,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error { message: message.into(), kind: ErrorKind::Other }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The same error, classified as `kind` unless it already has a kind of its own.
    pub fn or_kind(mut self, kind: ErrorKind) -> Self {
        if self.kind == ErrorKind::Other {
            self.kind = kind;
        }
        self
    }
}

/// Classify the error of a step (e.g. reading the data is `ErrorKind::File`).
pub trait ResultExt<T> {
    fn or_kind(self, kind: ErrorKind) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn or_kind(self, kind: ErrorKind) -> Result<T> {
        self.map_err(|e| e.or_kind(kind))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        // DataFusion errors can span lines (with backtraces or context); keep one line.
        Error::new(e.to_string().replace('\n', " "))
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::new(e.to_string().replace('\n', " "))
    }
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Error::new(e.to_string().replace('\n', " "))
    }
}

/// Build an [`Error`] with `format!` syntax.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => { $crate::error::Error::new(format!($($arg)*)) };
}

/// Return early with an [`Error`] built with `format!` syntax.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::err!($($arg)*)) };
}
