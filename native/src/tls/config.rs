//! rustls configurations built from the cluster's PEM files, and swapped in
//! place when the files are rotated.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Sessions each side remembers for resumption; a node has at most a few
/// dozen peers and clients reconnecting at once.
const SESSION_CACHE: usize = 256;

/// Why certificate files could not become a TLS configuration; each names
/// the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: no certificate in file")]
    NoCertificate { path: PathBuf },
    #[error("{path}: CA file has no certificates")]
    NoCaCertificate { path: PathBuf },
    #[error("{path}: bad CA certificate: {reason}")]
    BadCaCertificate { path: PathBuf, reason: String },
    #[error("{path}: no private key in file")]
    NoPrivateKey { path: PathBuf },
    #[error("{path}: unsupported private key: {reason}")]
    UnsupportedKey { path: PathBuf, reason: String },
    #[error("{key}: private key does not match the certificate {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("building the TLS configuration failed: {0}")]
    Config(String),
}

/// The three files a node's TLS needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The layout `canhazdb cert` writes: `ca.crt`, `node.crt`, `node.key`.
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join("node.crt"),
            key: dir.join("node.key"),
        }
    }
}

/// The ring provider, built once and passed to every builder explicitly so
/// no process-wide default (or a second provider pulled in by another
/// dependency) decides which cryptography runs.
///
/// rustls 0.23.48 deprecates ring's provider only because ring has no
/// post-quantum key exchange; ring is still the provider this project
/// chose (it avoids aws-lc-rs and its cmake build), so the warning is
/// silenced here.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    #[allow(deprecated)]
    let make = || Arc::new(rustls::crypto::ring::default_provider());
    PROVIDER.get_or_init(make).clone()
}

/// A PEM input: bytes plus the name errors should carry (a path, or a
/// description for bytes that came from elsewhere).
struct Pem<'a> {
    name: PathBuf,
    bytes: std::borrow::Cow<'a, [u8]>,
}

impl<'a> Pem<'a> {
    fn file(path: &Path) -> Result<Pem<'static>, TlsError> {
        let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Pem {
            name: path.to_path_buf(),
            bytes: bytes.into(),
        })
    }

    fn bytes(name: &str, bytes: &'a [u8]) -> Pem<'a> {
        Pem {
            name: PathBuf::from(name),
            bytes: bytes.into(),
        }
    }

    fn certs(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs = CertificateDer::pem_slice_iter(&self.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| TlsError::NoCertificate {
                path: self.name.clone(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                path: self.name.clone(),
            });
        }
        Ok(certs)
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let certs = self.certs().map_err(|_| TlsError::NoCaCertificate {
            path: self.name.clone(),
        })?;
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| TlsError::BadCaCertificate {
                path: self.name.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(Arc::new(roots))
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(&self.bytes).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
                path: self.name.clone(),
            },
            other => TlsError::UnsupportedKey {
                path: self.name.clone(),
                reason: other.to_string(),
            },
        })
    }
}

/// Loads a certificate chain and its key, refusing a key that belongs to a
/// different certificate (a classic slip when rotating files by hand).
fn certified_key(cert: &Pem<'_>, key: &Pem<'_>) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = cert.certs()?;
    let der = key.key()?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::UnsupportedKey {
            path: key.name.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert.name.clone(),
                key: key.name.clone(),
            })
        }
        Err(e) => Err(TlsError::UnsupportedKey {
            path: key.name.clone(),
            reason: e.to_string(),
        }),
    }
}

fn client_config(
    roots: Arc<RootCertStore>,
    identity: Option<Arc<CertifiedKey>>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(key) => builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(key))),
        None => builder.with_no_client_auth(),
    };
    config.resumption = Resumption::in_memory_sessions(SESSION_CACHE);
    Ok(config)
}

struct NodeConfigs {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl NodeConfigs {
    fn load(files: &TlsFiles) -> Result<NodeConfigs, TlsError> {
        let ca = Pem::file(&files.ca)?;
        let cert = Pem::file(&files.cert)?;
        let key = Pem::file(&files.key)?;
        let roots = ca.roots()?;
        let identity = certified_key(&cert, &key)?;

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(identity.clone())));
        server.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
        server.ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;

        let client = client_config(roots, Some(identity))?;
        Ok(NodeConfigs {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// A node's TLS: the listener side (client certificates required) and the
/// dialing side (the node certificate presented to peers), both from the
/// same files and replaced together on reload.
pub struct NodeTls {
    files: TlsFiles,
    current: RwLock<Arc<NodeConfigs>>,
}

impl NodeTls {
    pub fn load(files: TlsFiles) -> Result<NodeTls, TlsError> {
        let configs = NodeConfigs::load(&files)?;
        Ok(NodeTls {
            files,
            current: RwLock::new(Arc::new(configs)),
        })
    }

    /// Re-reads the files after a rotation (SIGHUP). Connections already
    /// established keep their session; new handshakes use the new chain. On
    /// any error the old configuration stays in force, so a botched
    /// rotation does not take the node off the network.
    pub fn reload(&self) -> Result<(), TlsError> {
        let configs = NodeConfigs::load(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(configs);
        Ok(())
    }

    fn configs(&self) -> Arc<NodeConfigs> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// For the node and WebSocket listeners; take one per accepted
    /// connection so a reload applies to the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.configs().server.clone())
    }

    /// For dialing peers; verifies the peer against the CA and the dialed
    /// name or IP address.
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.configs().client.clone())
    }
}

/// The Rust client's TLS: trusts the cluster CA and, when the cluster wants
/// to know who is calling, presents a client certificate.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    pub fn from_pem(ca: &[u8], cert_and_key: Option<(&[u8], &[u8])>) -> Result<ClientTls, TlsError> {
        let roots = Pem::bytes("CA certificate", ca).roots()?;
        let identity = match cert_and_key {
            Some((cert, key)) => Some(certified_key(
                &Pem::bytes("client certificate", cert),
                &Pem::bytes("client key", key),
            )?),
            None => None,
        };
        Ok(ClientTls {
            config: Arc::new(client_config(roots, identity)?),
        })
    }

    pub fn from_files(ca: &Path, cert_and_key: Option<(&Path, &Path)>) -> Result<ClientTls, TlsError> {
        let roots = Pem::file(ca)?.roots()?;
        let identity = match cert_and_key {
            Some((cert, key)) => Some(certified_key(&Pem::file(cert)?, &Pem::file(key)?)?),
            None => None,
        };
        Ok(ClientTls {
            config: Arc::new(client_config(roots, identity)?),
        })
    }

    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.config.clone())
    }
}
