//! `switchboard matrix registration`: the application-service registration
//! the homeserver loads, and the configuration keys that match it.
//!
//! Two ways in:
//! - **A new bridge** (no `--config`): fresh `as_token` and `hs_token` are
//!   generated and written to private files next to the registration, and
//!   the `[[bridge]]` block to paste into the configuration is printed.
//! - **An existing bridge** (`--config FILE --bridge ID`): the registration
//!   is written again from that bridge's configuration (tokens, templates,
//!   URL), e.g. after changing a ghost template; the homeserver must then be
//!   restarted.

use crate::config::{BridgeKind, Config};
use anyhow::{Context, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use switchboard_matrix::config::{MatrixConfig, Token, default_ghost_templates};
use switchboard_matrix::registration::{Registration, double_puppet_yaml};
use switchboard_model::BridgeId;

/// What a new bridge's registration is made from.
#[derive(Debug, Clone)]
pub struct NewBridge {
    /// `matrix:<name>`.
    pub id: BridgeId,
    /// The homeserver's server name.
    pub server_name: String,
    /// The homeserver's client-server API base URL.
    pub homeserver_url: String,
    /// Where the homeserver reaches the daemon (`http://<http.listen>`).
    pub url: String,
    /// The folder for the registration and the two token files.
    pub dir: PathBuf,
    /// Overwrite existing files.
    pub force: bool,
}

/// What was written, and the configuration block to use.
#[derive(Debug)]
pub struct Written {
    /// The registration file.
    pub registration: PathBuf,
    /// The `[[bridge]]` block (new bridges) or a reminder (existing ones).
    pub advice: String,
}

/// 32 random bytes as 64 hex digits, from the operating system's generator.
fn random_token() -> String {
    use chacha20poly1305::aead::{KeyInit, OsRng};
    let key = chacha20poly1305::XChaCha20Poly1305::generate_key(&mut OsRng);
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `contents` to a new file readable only by its owner.
fn write_private(path: &Path, contents: &str, force: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        if path.exists() && !force {
            format!("{} exists (use --force to replace it)", path.display())
        } else {
            format!("cannot write {}", path.display())
        }
    })?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The file-name stem of a bridge: `matrix-example` for `matrix:example`.
fn stem(id: &BridgeId) -> String {
    id.as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Sets up a new bridge: tokens, registration, configuration block.
pub fn new_bridge(new: &NewBridge) -> anyhow::Result<Written> {
    if new.id.platform() != "matrix" {
        bail!("the bridge id must be matrix:<name>, got {}", new.id);
    }
    let stem = stem(&new.id);
    let as_file = new.dir.join(format!("{stem}.as-token"));
    let hs_file = new.dir.join(format!("{stem}.hs-token"));
    let registration_file = new.dir.join(format!("{stem}-registration.yaml"));
    let puppet_file = new.dir.join(format!("{stem}.doublepuppet-token"));
    let puppet_registration = new.dir.join(format!("{stem}-doublepuppet.yaml"));
    let puppet_token = Token::new(random_token());
    let config = MatrixConfig {
        id: new.id.clone(),
        homeserver_url: new.homeserver_url.clone(),
        server_name: new.server_name.clone(),
        appservice_id: "switchboard".to_owned(),
        as_token: Token::new(random_token()),
        hs_token: Token::new(random_token()),
        sender_localpart: "switchboard".to_owned(),
        ghost_templates: default_ghost_templates(),
        alias_template: "switchboard_{name}".to_owned(),
        invite: Vec::new(),
        max_upload: crate::config::DEFAULT_MATRIX_MAX_UPLOAD,
        public_url: None,
    };
    let registration = Registration::for_config(&config, &new.url);
    write_private(&as_file, config.as_token.expose(), new.force)?;
    write_private(&hs_file, config.hs_token.expose(), new.force)?;
    write_private(&registration_file, &registration.to_yaml(), new.force)?;
    write_private(&puppet_file, puppet_token.expose(), new.force)?;
    write_private(
        &puppet_registration,
        &double_puppet_yaml(
            &config.appservice_id,
            &config.server_name,
            &puppet_token,
            &Token::new(random_token()),
        ),
        new.force,
    )?;
    let advice = format!(
        "# For double puppeting (people who link their Matrix account appear as it),\n\
         # also add {puppet_reg} to app_service_config_files.\n\
         [[bridge]]\nid = \"{id}\"\ntype = \"matrix\"\nhomeserver_url = \"{hs}\"\nserver_name = \"{server}\"\n\
         appservice_url = \"{url}\"\nas_token_file = \"{as_file}\"\nhs_token_file = \"{hs_file}\"\n\
         registration_file = \"{reg}\"\ndouble_puppet_token_file = \"{puppet_file}\"\n",
        puppet_reg = puppet_registration.display(),
        puppet_file = puppet_file.display(),
        id = new.id,
        hs = new.homeserver_url,
        server = new.server_name,
        url = new.url,
        as_file = as_file.display(),
        hs_file = hs_file.display(),
        reg = registration_file.display(),
    );
    Ok(Written {
        registration: registration_file,
        advice,
    })
}

/// Writes the registration of configured bridge `id` to `output` (default:
/// its `registration_file`).
pub fn existing_bridge(
    config: &Config,
    id: &BridgeId,
    output: Option<&Path>,
    force: bool,
) -> anyhow::Result<Written> {
    let Some(bridge) = config.bridges.iter().find(|b| &b.id == id) else {
        bail!("no bridge {id} in the configuration");
    };
    let BridgeKind::Matrix(matrix) = &bridge.kind else {
        bail!("bridge {id} is not a Matrix bridge");
    };
    let Some(path) = output.or(matrix.registration_file.as_deref()) else {
        bail!("give --output, or set registration_file for bridge {id}");
    };
    let url = matrix
        .appservice_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.http.listen));
    let settings = crate::bridges::matrix_config(id, matrix);
    let registration = Registration::for_config(&settings, &url);
    write_private(path, &registration.to_yaml(), force)?;
    let mut advice = "Restart the homeserver so that it loads the new registration.".to_owned();
    if let Some(token) = &matrix.double_puppet_token {
        let puppets = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{}-doublepuppet.yaml", stem(id)));
        write_private(
            &puppets,
            &double_puppet_yaml(
                &settings.appservice_id,
                &settings.server_name,
                &Token::new(token.expose()),
                &Token::new(random_token()),
            ),
            force,
        )?;
        advice = format!(
            "Also wrote {} (double puppeting; list it in app_service_config_files too). {advice}",
            puppets.display()
        );
    }
    Ok(Written {
        registration: path.to_owned(),
        advice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_matrix::registration::differences;

    #[test]
    fn a_new_bridge_gets_private_tokens_and_a_matching_registration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new = NewBridge {
            id: BridgeId::new("matrix:example"),
            server_name: "example.org".into(),
            homeserver_url: "https://matrix.example.org".into(),
            url: "http://127.0.0.1:29340".into(),
            dir: dir.path().to_owned(),
            force: false,
        };
        let written = new_bridge(&new).expect("written");
        let text = std::fs::read_to_string(&written.registration).expect("registration");
        let registration = Registration::from_yaml(&text).expect("reads back");
        let as_token =
            std::fs::read_to_string(dir.path().join("matrix-example.as-token")).expect("as");
        let hs_token =
            std::fs::read_to_string(dir.path().join("matrix-example.hs-token")).expect("hs");
        assert_eq!(as_token.len(), 64);
        assert_ne!(as_token, hs_token);
        let config = MatrixConfig {
            id: new.id.clone(),
            homeserver_url: new.homeserver_url.clone(),
            server_name: new.server_name.clone(),
            appservice_id: "switchboard".into(),
            as_token: Token::new(as_token),
            hs_token: Token::new(hs_token),
            sender_localpart: "switchboard".into(),
            ghost_templates: default_ghost_templates(),
            alias_template: "switchboard_{name}".into(),
            invite: Vec::new(),
            max_upload: 1,
            public_url: None,
        };
        assert!(differences(&registration, &config, &new.url).is_empty());
        assert!(written.advice.contains("registration_file = "));
        // The double-puppeting registration and its token, named in the block.
        let puppet_token =
            std::fs::read_to_string(dir.path().join("matrix-example.doublepuppet-token"))
                .expect("double-puppeting token");
        assert_eq!(puppet_token.len(), 64);
        let puppets = std::fs::read_to_string(dir.path().join("matrix-example-doublepuppet.yaml"))
            .expect("double-puppeting registration");
        assert!(
            puppets.contains(&format!("as_token: \"{puppet_token}\"")),
            "{puppets}"
        );
        assert!(puppets.contains("url: null"), "{puppets}");
        assert!(written.advice.contains("double_puppet_token_file = "));
        assert!(
            !written.advice.contains(&puppet_token),
            "no token in the advice"
        );
        assert!(
            !written.advice.contains(config.as_token.expose()),
            "no token in the advice"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&written.registration)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = new_bridge(&new).expect_err("never overwritten silently");
        assert!(format!("{again:#}").contains("--force"), "{again:#}");
    }
}
