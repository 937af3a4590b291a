//! The cookie: the shared secret that lets two nodes connect.
//!
//! Two nodes connect only if they hold the same cookie; the handshake proves it by
//! challenge/response, so the cookie never crosses the wire. A [`Cookie`] never shows up in
//! `Debug` output or logs, and has no `Display`.
//!
//! # Where the cookie comes from
//!
//! [`Cookie::resolve`] takes, in order, the first of:
//!
//! 1. the cookie given explicitly (`NodeConfig::cookie`);
//! 2. the environment variable `NODUS_COOKIE`;
//! 3. the file `$HOME/.nodus.cookie`, created if missing the way the BEAM creates
//!    `~/.erlang.cookie`: 20 random characters `A`–`Z`, mode `0400`.
//!
//! The file is created atomically (written under a temporary name opened with `create_new`,
//! then hard-linked into place, which fails if the file appeared meanwhile), so two nodes
//! starting at the same moment on one machine end up with the same cookie. A cookie file
//! that group or others may read is used, with a warning.
//!
//! ```
//! use actor_remote::Cookie;
//! let cookie = Cookie::resolve(Some(Cookie::new("secret")?))?;
//! assert_eq!(cookie.as_bytes(), b"secret");
//! assert_eq!(format!("{cookie:?}"), "Cookie(<redacted>)");
//! # Ok::<(), actor_remote::CookieError>(())
//! ```

use std::{
    fmt, fs,
    io::{self, Write},
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
};

/// The environment variable [`Cookie::resolve`] reads.
pub const COOKIE_ENV: &str = "NODUS_COOKIE";
/// The cookie file's name in the home directory.
pub const COOKIE_FILE: &str = ".nodus.cookie";
/// How many characters a generated cookie has (as the BEAM's).
const GENERATED_LEN: usize = 20;

/// A node's cookie. Its `Debug` prints `Cookie(<redacted>)`; it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(Arc<str>);

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cookie(<redacted>)")
    }
}

/// Where a cookie was looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieSource {
    /// Given explicitly.
    Explicit,
    /// The `NODUS_COOKIE` environment variable.
    Env,
    /// A cookie file.
    File(PathBuf),
}

impl fmt::Display for CookieSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CookieSource::Explicit => f.write_str("the explicit cookie"),
            CookieSource::Env => write!(f, "{COOKIE_ENV}"),
            CookieSource::File(path) => write!(f, "the file {}", path.display()),
        }
    }
}

/// No usable cookie could be found or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// The cookie is empty.
    #[error("the cookie from {from} is empty; set NodeConfig::cookie, {COOKIE_ENV}, or put a cookie in ~/{COOKIE_FILE}")]
    Empty {
        /// Where the empty cookie came from.
        from: CookieSource,
    },
    /// `NODUS_COOKIE` is not valid Unicode.
    #[error("{COOKIE_ENV} is not valid Unicode; set it to plain text or unset it")]
    EnvNotUnicode,
    /// No cookie was given and there is no home directory to keep the cookie file in.
    #[error("no cookie given and HOME is not set; set NodeConfig::cookie or {COOKIE_ENV}")]
    NoHome,
    /// The cookie file exists but can't be read.
    #[error("can't read the cookie file {path}: {error}; set NodeConfig::cookie, {COOKIE_ENV}, or fix the permissions of {path}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: io::Error,
    },
    /// The cookie file is missing and can't be created.
    #[error("can't create the cookie file {path}: {error}; set NodeConfig::cookie, {COOKIE_ENV}, or fix the permissions of {dir}", path = path.display(), dir = path.parent().unwrap_or(path).display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: io::Error,
    },
}

impl Cookie {
    /// A cookie with the given text.
    ///
    /// # Errors
    ///
    /// [`CookieError::Empty`] if `text` is empty.
    pub fn new(text: impl Into<String>) -> Result<Self, CookieError> {
        Self::from_source(text.into(), CookieSource::Explicit)
    }

    fn from_source(text: String, source: CookieSource) -> Result<Self, CookieError> {
        if text.is_empty() {
            return Err(CookieError::Empty { from: source });
        }
        Ok(Cookie(text.into()))
    }

    /// The cookie's bytes, for the handshake's digest. Never log them.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The cookie a node uses: `explicit` if given, else `NODUS_COOKIE`, else
    /// `$HOME/.nodus.cookie`, created if missing (see the [module docs](self)).
    ///
    /// # Errors
    ///
    /// [`CookieError`] if the source found is empty or unreadable, `NODUS_COOKIE` is not
    /// Unicode, or the file must be created and can't be.
    pub fn resolve(explicit: Option<Cookie>) -> Result<Cookie, CookieError> {
        if let Some(cookie) = explicit {
            return Ok(cookie);
        }
        let env_value = match std::env::var(COOKIE_ENV) {
            Ok(value) => Some(value),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => return Err(CookieError::EnvNotUnicode),
        };
        if let Some(value) = env_value {
            return Self::from_source(value, CookieSource::Env);
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or(CookieError::NoHome)?;
        Self::resolve_with(None, None, &Path::new(&home).join(COOKIE_FILE))
    }

    /// [`resolve`](Self::resolve) with the environment variable's value and the cookie
    /// file's path given, so that tests touch neither the process environment nor the home
    /// directory.
    ///
    /// # Errors
    ///
    /// As [`resolve`](Self::resolve).
    pub fn resolve_with(
        explicit: Option<Cookie>,
        env_value: Option<&str>,
        path: &Path,
    ) -> Result<Cookie, CookieError> {
        if let Some(cookie) = explicit {
            return Ok(cookie);
        }
        if let Some(value) = env_value {
            return Self::from_source(value.to_owned(), CookieSource::Env);
        }
        match read_cookie_file(path) {
            Err(CookieError::Read { error, .. }) if error.kind() == io::ErrorKind::NotFound => {
                create_cookie_file(path)?;
                read_cookie_file(path)
            }
            other => other,
        }
    }
}

impl FromStr for Cookie {
    type Err = CookieError;

    fn from_str(text: &str) -> Result<Self, CookieError> {
        Cookie::new(text)
    }
}

fn read_cookie_file(path: &Path) -> Result<Cookie, CookieError> {
    let read_error = |error| CookieError::Read {
        path: path.to_owned(),
        error,
    };
    let text = fs::read_to_string(path).map_err(read_error)?;
    warn_if_shared(path);
    // As the BEAM, ignore surrounding whitespace such as a final newline.
    Cookie::from_source(text.trim().to_owned(), CookieSource::File(path.to_owned()))
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", mode & 0o777),
                "the cookie file can be read by group or others; run `chmod 400 {}`",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

/// 20 random characters `A`–`Z`.
fn generate() -> io::Result<String> {
    let mut out = String::with_capacity(GENERATED_LEN);
    let mut bytes = [0u8; 32];
    while out.len() < GENERATED_LEN {
        getrandom::fill(&mut bytes).map_err(io::Error::from)?;
        // 234 = 9 × 26: rejecting larger bytes keeps the letters uniform.
        for b in bytes
            .iter()
            .filter(|&&b| b < 234)
            .take(GENERATED_LEN - out.len())
        {
            out.push(char::from(b'A' + b % 26));
        }
    }
    Ok(out)
}

/// Creates the cookie file with a fresh cookie, unless it appears meanwhile.
///
/// The cookie is written to a temporary file in the same directory (opened with
/// `create_new`, mode 0400), which is then hard-linked to `path`. The link fails if `path`
/// exists, so a racing node's file wins and both nodes read the same cookie; a file is never
/// seen half-written.
fn create_cookie_file(path: &Path) -> Result<(), CookieError> {
    let create_error = |error| CookieError::Create {
        path: path.to_owned(),
        error,
    };
    let cookie = generate().map_err(create_error)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        generate().map_err(create_error)?
    ));
    let tmp = PathBuf::from(tmp_name);
    let written = write_new(&tmp, cookie.as_bytes());
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a new cookie file");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(create_error(e)),
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o400);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_and_new_rejects_empty() {
        let cookie = Cookie::new("hush").expect("non-empty cookie");
        assert_eq!(format!("{cookie:?}"), "Cookie(<redacted>)");
        assert!(!format!("{:?}", Some(&cookie)).contains("hush"));
        assert!(matches!(Cookie::new(""), Err(CookieError::Empty { .. })));
        assert!(matches!(
            "".parse::<Cookie>(),
            Err(CookieError::Empty { .. })
        ));
    }

    #[test]
    fn explicit_beats_env_beats_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(COOKIE_FILE);
        fs::write(&path, "FROMFILE\n").expect("write cookie file");
        let explicit = Cookie::new("explicit").expect("cookie");
        let c = Cookie::resolve_with(Some(explicit), Some("env"), &path).expect("resolve");
        assert_eq!(c.as_bytes(), b"explicit");
        let c = Cookie::resolve_with(None, Some("env"), &path).expect("resolve");
        assert_eq!(c.as_bytes(), b"env");
        let c = Cookie::resolve_with(None, None, &path).expect("resolve");
        assert_eq!(c.as_bytes(), b"FROMFILE");
        let e = Cookie::resolve_with(None, Some(""), &path).expect_err("empty env cookie");
        assert!(
            matches!(
                e,
                CookieError::Empty {
                    from: CookieSource::Env
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn missing_file_is_created_like_the_beams() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(COOKIE_FILE);
        let first = Cookie::resolve_with(None, None, &path).expect("create cookie");
        assert_eq!(first.as_bytes().len(), 20);
        assert!(first.as_bytes().iter().all(u8::is_ascii_uppercase));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o400);
        }
        let again = Cookie::resolve_with(None, None, &path).expect("read cookie");
        assert_eq!(first, again);
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("read dir").count(), 1);
    }

    #[test]
    fn racing_creators_agree() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(COOKIE_FILE);
        let cookies: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Cookie::resolve_with(None, None, &path)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread").expect("resolve"))
                .collect()
        });
        assert!(cookies.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn empty_or_unreadable_file_says_what_to_do() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(COOKIE_FILE);
        fs::write(&path, "\n").expect("write");
        let e = Cookie::resolve_with(None, None, &path).expect_err("empty file");
        assert!(e.to_string().contains("NODUS_COOKIE"), "{e}");
        // A directory where the file should be can't be read, even by root.
        let path = dir.path().join("sub");
        fs::create_dir(&path).expect("mkdir");
        let e = Cookie::resolve_with(None, None, &path).expect_err("directory");
        assert!(matches!(e, CookieError::Read { .. }), "{e}");
        assert!(e.to_string().contains("fix the permissions of"), "{e}");
    }
}
