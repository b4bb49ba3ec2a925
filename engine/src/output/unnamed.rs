//! Output files that have no name until they are complete. A file is opened with
//! `O_TMPFILE` in its target's directory: it exists only as an open descriptor, so a
//! run that dies at any point, even by SIGKILL or a power cut, leaves nothing behind.
//! [`UnnamedFile::publish`] flushes it to disk and then gives it its name (linked
//! under a hidden temporary name, then renamed over the target, so the target is
//! always either the old file or the whole new one). Where the filesystem has no
//! `O_TMPFILE`, a named hidden temporary file is used instead, removed on failure.

use std::fs::File;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::err;
use crate::error::Result;

pub struct UnnamedFile {
    file: File,
    dir: PathBuf,
    /// The named stand-in where the filesystem cannot make unnamed files.
    named: Option<NamedTempFile>,
}

/// The directory a target is written in (created if missing).
fn directory_of(target: &Path) -> Result<PathBuf> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if dir.exists() && !dir.is_dir() {
        return Err(err!("{}: cannot write the output there: it is a file, not a directory", dir.display()));
    }
    std::fs::create_dir_all(&dir).map_err(|e| err!("{}: cannot create directory: {e}", dir.display()))?;
    Ok(dir)
}

impl UnnamedFile {
    /// An empty, unnamed file in `target`'s directory, readable by all as an
    /// ordinary output is (mode 0644).
    pub fn create(target: &Path) -> Result<UnnamedFile> {
        let dir = directory_of(target)?;
        let cannot = |e: std::io::Error| err!("{}: cannot write: {e}", target.display());
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let opened = std::fs::OpenOptions::new().read(true).write(true).mode(0o644).custom_flags(libc::O_TMPFILE).open(&dir);
            match opened {
                Ok(file) => {
                    // The mode given to open is masked by the umask; outputs are 0644.
                    file.set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(cannot)?;
                    return Ok(UnnamedFile { file, dir, named: None });
                }
                // Filesystems without O_TMPFILE say so with one of these.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)) => {}
                Err(e) => return Err(cannot(e)),
            }
        }
        let mut builder = tempfile::Builder::new();
        builder.prefix(".ehrfusion-");
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        let named = builder.tempfile_in(&dir).map_err(cannot)?;
        let file = named.reopen().map_err(cannot)?;
        Ok(UnnamedFile { file, dir, named: Some(named) })
    }

    /// A handle to write through (it shares the file and its offset).
    pub fn handle(&self) -> Result<File> {
        self.file.try_clone().map_err(|e| err!("{}: cannot write: {e}", self.dir.display()))
    }

    /// Make the complete file durable and give it the name `target`, replacing any
    /// file there.
    pub fn publish(self, target: &Path) -> Result<()> {
        let cannot = |e: std::io::Error| err!("{}: cannot write: {e}", target.display());
        // Full disks and quota errors can surface only here, on filesystems that
        // allocate blocks late; a file that is not wholly on disk is not published.
        self.file.sync_all().map_err(cannot)?;
        if let Some(named) = self.named {
            return named.persist(target).map(|_| ()).map_err(|e| cannot(e.error));
        }
        let hidden = self.link_hidden().map_err(cannot)?;
        std::fs::rename(&hidden, target).map_err(|e| {
            let _ = std::fs::remove_file(&hidden);
            cannot(e)
        })
    }

    /// Link the unnamed file into its directory under a fresh hidden name.
    #[cfg(target_os = "linux")]
    fn link_hidden(&self) -> std::io::Result<PathBuf> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::io::AsRawFd;
        let source = CString::new(format!("/proc/self/fd/{}", self.file.as_raw_fd())).expect("no NUL in a path we made");
        for attempt in 0u32.. {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
            let hidden = self.dir.join(format!(".ehrfusion-{}-{nanos:x}-{attempt}", std::process::id()));
            let name = CString::new(hidden.as_os_str().as_bytes()).map_err(|_| std::io::Error::other("path holds a NUL byte"))?;
            // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
            let linked = unsafe { libc::linkat(libc::AT_FDCWD, source.as_ptr(), libc::AT_FDCWD, name.as_ptr(), libc::AT_SYMLINK_FOLLOW) };
            if linked == 0 {
                return Ok(hidden);
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) || attempt >= 100 {
                return Err(e);
            }
        }
        unreachable!("the loop returns")
    }

    #[cfg(not(target_os = "linux"))]
    fn link_hidden(&self) -> std::io::Result<PathBuf> {
        unreachable!("unnamed files are made only on Linux")
    }
}
