//! The cluster's own certificate authority, behind `canhazdb cert`.
//!
//! A canhazdb cluster trusts exactly one CA: whoever holds `ca.key` can admit
//! nodes and clients, so the tooling keeps the key files private from the
//! moment they exist and never silently replaces a file an operator already
//! deployed.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};

/// The subject CN that marks a node certificate; the server grants node
/// privileges to exactly this name, so no client may be issued it.
pub const NODE_COMMON_NAME: &str = "node";

/// The CA's subject CN. Every cluster's CA has the same name, so a
/// certificate from a foreign cluster fails on its signature, not its name.
pub const CA_COMMON_NAME: &str = "canhazdb CA";

const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
const NODE_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 60 * 60);
/// Client certificates follow the node certificate's lifetime so an operator
/// rotates both on one schedule.
const CLIENT_VALIDITY: Duration = NODE_VALIDITY;
/// Issued certificates start a little in the past so a peer whose clock runs
/// behind does not see a fresh certificate as not yet valid.
const BACKDATE: Duration = Duration::from_secs(60 * 60);
/// RFC 5280 caps a CN at 64 characters.
const MAX_NAME_LEN: usize = 64;

/// Why a `canhazdb cert` step did not complete; each names the file it
/// concerns so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: already exists (pass --overwrite to replace it)")]
    Exists { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("invalid client name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("invalid host {host:?}: {reason}")]
    BadHost { host: String, reason: String },
    #[error("generating the certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The files a command wrote, so the CLI can tell the operator where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate and its private key, both PEM, as written to disk.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a peer may use a certificate for; a node both serves and dials, a
/// client only dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    ServerAuth,
    ClientAuth,
}

/// Everything that varies between issued certificates, so tests can make
/// the odd ones (expired, wrong names) through the same code as the CLI.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub common_name: String,
    /// IP addresses become IP SANs, anything else a DNS SAN.
    pub hosts: Vec<String>,
    pub usages: Vec<Usage>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl LeafSpec {
    /// A node certificate valid from now (minus clock-skew slack) for five years.
    pub fn node(hosts: &[String]) -> LeafSpec {
        let now = SystemTime::now();
        LeafSpec {
            common_name: NODE_COMMON_NAME.to_string(),
            hosts: hosts.to_vec(),
            usages: vec![Usage::ServerAuth, Usage::ClientAuth],
            not_before: now - BACKDATE,
            not_after: now + NODE_VALIDITY,
        }
    }

    /// A client certificate for `name`, valid from now for five years.
    pub fn client(name: &str) -> LeafSpec {
        let now = SystemTime::now();
        LeafSpec {
            common_name: name.to_string(),
            hosts: Vec::new(),
            usages: vec![Usage::ClientAuth],
            not_before: now - BACKDATE,
            not_after: now + CLIENT_VALIDITY,
        }
    }
}

/// A CA held in memory: its certificate and the key that signs with it.
pub struct Authority {
    cert_pem: String,
    key: KeyPair,
}

impl Authority {
    /// A fresh self-signed CA valid over the given window.
    pub fn generate(not_before: SystemTime, not_after: SystemTime) -> Result<Authority, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// Loads a CA from its PEM files' contents; `cert_path` and `key_path`
    /// only name the files in errors.
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Authority, CertError> {
        let bad = |path: &Path, reason: String| CertError::BadCa {
            path: path.to_path_buf(),
            reason,
        };
        let key = KeyPair::from_pem(key_pem).map_err(|e| bad(key_path, format!("not a private key: {e}")))?;
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e: rustls_pki_types::pem::Error| bad(cert_path, format!("no certificate: {e}")))?;
        let der: rustls_pki_types::CertificateDer = der;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| bad(cert_path, format!("not an X.509 certificate: {e}")))?;
        if !parsed.is_ca() {
            return Err(bad(cert_path, "not a CA certificate".to_string()));
        }
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(bad(
                key_path,
                format!("does not match the certificate {}", cert_path.display()),
            ));
        }
        Ok(Authority {
            cert_pem: cert_pem.to_string(),
            key,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a certificate with a new key, signed by this CA.
    pub fn issue(&self, spec: &LeafSpec) -> Result<IssuedCert, CertError> {
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        // An empty name means no CN at all, the shape of certificates from
        // other tooling that the server must still classify.
        if !spec.common_name.is_empty() {
            params
                .distinguished_name
                .push(DnType::CommonName, spec.common_name.as_str());
        }
        params.subject_alt_names = spec.hosts.iter().map(|h| san(h)).collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = spec
            .usages
            .iter()
            .map(|u| match u {
                Usage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
                Usage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
            })
            .collect();
        params.use_authority_key_identifier_extension = true;
        params.not_before = spec.not_before.into();
        params.not_after = spec.not_after.into();
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn san(host: &str) -> Result<SanType, CertError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let bad = |reason: String| CertError::BadHost {
        host: host.to_string(),
        reason,
    };
    if host.is_empty() {
        return Err(bad("empty".to_string()));
    }
    rustls_pki_types::DnsName::try_from(host).map_err(|e| bad(e.to_string()))?;
    Ok(SanType::DnsName(
        host.try_into().map_err(|e: rcgen::Error| bad(e.to_string()))?,
    ))
}

/// Writes `ca.crt` and `ca.key` for a new cluster CA valid for ten years.
pub fn create_ca(dir: &Path, overwrite: bool) -> Result<CreatedFiles, CertError> {
    let files = CreatedFiles {
        cert: dir.join("ca.crt"),
        key: dir.join("ca.key"),
    };
    check_targets(dir, &files, overwrite)?;
    let now = SystemTime::now();
    let ca = Authority::generate(now - BACKDATE, now + CA_VALIDITY)?;
    let issued = IssuedCert {
        cert_pem: ca.cert_pem().to_string(),
        key_pem: ca.key_pem(),
    };
    write_pair(&files, &issued, overwrite)?;
    Ok(files)
}

/// Writes `node.crt` and `node.key`, signed by the CA in `dir`, naming every
/// host the node is dialed by.
pub fn create_node(dir: &Path, hosts: &[String], overwrite: bool) -> Result<CreatedFiles, CertError> {
    if hosts.is_empty() {
        return Err(CertError::BadHost {
            host: String::new(),
            reason: "a node certificate needs at least one host name or IP address".to_string(),
        });
    }
    issue_into(dir, NODE_COMMON_NAME, &LeafSpec::node(hosts), overwrite)
}

/// Writes `<name>.crt` and `<name>.key`, a client certificate for `name`.
pub fn create_client(dir: &Path, name: &str, overwrite: bool) -> Result<CreatedFiles, CertError> {
    check_client_name(name)?;
    issue_into(dir, name, &LeafSpec::client(name), overwrite)
}

/// Issues `spec` from the CA in `dir` into `<stem>.crt` / `<stem>.key`; the
/// entry point for certificates with an explicit validity window.
pub fn issue_into(
    dir: &Path,
    stem: &str,
    spec: &LeafSpec,
    overwrite: bool,
) -> Result<CreatedFiles, CertError> {
    let files = CreatedFiles {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
    };
    check_targets(dir, &files, overwrite)?;
    let ca = load_ca(dir)?;
    let issued = ca.issue(spec)?;
    write_pair(&files, &issued, overwrite)?;
    Ok(files)
}

fn load_ca(dir: &Path) -> Result<Authority, CertError> {
    let cert_path = dir.join("ca.crt");
    let key_path = dir.join("ca.key");
    let read = |path: &Path| {
        fs::read_to_string(path).map_err(|source| CertError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    Authority::from_pem(&read(&cert_path)?, &read(&key_path)?, &cert_path, &key_path)
}

/// A client name becomes a file name and a CN, so it must be both safe in a
/// path and unable to pose as the node or the CA itself.
fn check_client_name(name: &str) -> Result<(), CertError> {
    let refuse = |reason| {
        Err(CertError::BadName {
            name: name.to_string(),
            reason,
        })
    };
    if name == NODE_COMMON_NAME {
        return refuse("\"node\" is reserved for node certificates");
    }
    if name == "ca" {
        return refuse("\"ca\" would replace the CA's own files");
    }
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return refuse("must be 1 to 64 characters");
    }
    if name.starts_with(['.', '-']) {
        return refuse("must not start with '.' or '-'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return refuse("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Refuses before anything is written, so a refused command leaves no half
/// of a certificate/key pair behind.
fn check_targets(dir: &Path, files: &CreatedFiles, overwrite: bool) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !overwrite {
        for path in [&files.cert, &files.key] {
            if fs::symlink_metadata(path).is_ok() {
                return Err(CertError::Exists { path: path.clone() });
            }
        }
    }
    Ok(())
}

fn write_pair(files: &CreatedFiles, issued: &IssuedCert, overwrite: bool) -> Result<(), CertError> {
    // The key first: a certificate on disk without its key is useless, and
    // if the key step fails the operator can simply retry.
    write_file(&files.key, issued.key_pem.as_bytes(), 0o600, overwrite)?;
    write_file(&files.cert, issued.cert_pem.as_bytes(), 0o644, overwrite)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes through a temporary file created with its final mode, so the key
/// is never readable by others even for an instant, and a node reloading on
/// SIGHUP never reads a half-written file.
fn write_file(path: &Path, contents: &[u8], mode: u32, overwrite: bool) -> Result<(), CertError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    drop(file);
    let placed = written.map_err(io(&tmp)).and_then(|()| {
        if overwrite {
            fs::rename(&tmp, path).map_err(io(path))
        } else {
            // A hard link fails if the target appeared since the check,
            // where a rename would replace it.
            match fs::hard_link(&tmp, path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(CertError::Exists {
                    path: path.to_path_buf(),
                }),
                other => other.map_err(io(path)),
            }
        }
    });
    let _ = fs::remove_file(&tmp);
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);

    #[test]
    fn client_names_that_would_escape_or_impersonate_are_refused() {
        for name in [
            "node",
            "ca",
            "",
            "../x",
            "a/b",
            ".hidden",
            "-rf",
            "sp ace",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(check_client_name(name), Err(CertError::BadName { .. })),
                "{name:?}"
            );
        }
        for name in ["alice", "svc-backup.2", "A_b"] {
            assert!(check_client_name(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn hosts_become_ip_or_dns_sans() {
        assert!(matches!(san("127.0.0.1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(san("::1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(san("db-1.example.com"), Ok(SanType::DnsName(_))));
        assert!(matches!(san("not a host"), Err(CertError::BadHost { .. })));
        assert!(matches!(san(""), Err(CertError::BadHost { .. })));
    }

    #[test]
    fn a_ca_key_that_does_not_match_its_certificate_is_refused() {
        let now = SystemTime::now();
        let a = Authority::generate(now, now + YEAR).unwrap();
        let b = Authority::generate(now, now + YEAR).unwrap();
        let err = Authority::from_pem(
            a.cert_pem(),
            &b.key_pem(),
            Path::new("ca.crt"),
            Path::new("ca.key"),
        )
        .err()
        .unwrap();
        assert!(err.to_string().starts_with("ca.key: does not match"), "{err}");
    }
}
