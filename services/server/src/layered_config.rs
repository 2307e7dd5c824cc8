//! Builds the effective [`Config`] from its layers, later wins: the embedded `default.toml`, the
//! `--config` file, `RUDDER__SECTION__KEY` environment variables (plus `RUDDER_MODELS_DIR`), then
//! command-line flags. Every error is one line naming the file, variable or key at fault.

use clap::Args;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use rudder_core::Config;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// The built-in defaults: the single place each key's default is written.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

/// Prefix of environment overrides; `__` separates the section from the key.
pub const ENV_PREFIX: &str = "RUDDER__";
/// Shorthand for `RUDDER__MODELS__DIR`.
pub const MODELS_DIR_ENV: &str = "RUDDER_MODELS_DIR";

/// Flags that override configuration keys. Unset flags leave the lower layers alone.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigFlags {
    /// Configuration file (TOML) layered over the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (server.listen); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Data directory (server.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Models directory (models.dir).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist; pass an existing TOML file to --config")]
    MissingFile { path: PathBuf },
    #[error("config file {path} could not be read: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("{key} = {value:?} starts with `~/` but HOME is not set; give an absolute path")]
    NoHome { key: &'static str, value: PathBuf },
}

impl ConfigFlags {
    /// The effective configuration for these flags, with `~/` expanded in path keys.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
        if let Some(path) = &self.config {
            check_toml_file(path)?;
            figment = figment.merge(Toml::file_exact(path));
        }
        if let Some(dir) = std::env::var_os(MODELS_DIR_ENV) {
            figment = figment.merge(Serialized::default("models.dir", PathBuf::from(dir)));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        if let Some(listen) = self.listen {
            figment = figment.merge(Serialized::default("server.listen", listen));
        }
        if let Some(dir) = &self.data_dir {
            figment = figment.merge(Serialized::default("server.data_dir", dir));
        }
        if let Some(dir) = &self.models_dir {
            figment = figment.merge(Serialized::default("models.dir", dir));
        }
        let mut config: Config = figment.extract().map_err(|err| ConfigError::Invalid(one_line(&err)))?;
        let home = std::env::var_os("HOME").map(PathBuf::from);
        config.server.data_dir = expand_home("server.data_dir", &config.server.data_dir, home.as_deref())?;
        config.models.dir = expand_home("models.dir", &config.models.dir, home.as_deref())?;
        Ok(config)
    }
}

/// A `--config` file must exist and parse as TOML; checked here so the error names the file, line and
/// column on one line instead of a multi-line parser report.
fn check_toml_file(path: &Path) -> Result<(), ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::MissingFile { path: path.to_owned() });
        }
        Err(source) => return Err(ConfigError::Unreadable { path: path.to_owned(), source }),
    };
    toml::from_str::<toml::Table>(&text).map(drop).map_err(|err| {
        let position = err.span().map(|span| line_and_column(&text, span.start));
        let reason = err.message().trim().replace('\n', "; ");
        let reason = match position {
            Some((line, column)) => format!("line {line}, column {column}: {reason}"),
            None => reason,
        };
        ConfigError::Malformed { path: path.to_owned(), reason }
    })
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |tail| tail.chars().count()) + 1;
    (line, column)
}

/// figment reports each error with its key and the layer (file or env variable) it came from; it
/// prefixes keys with its profile name, which means nothing to a rudder user, and for a value from the
/// environment it names neither the variable nor the key in the spelling the schema uses.
fn one_line(err: &figment::Error) -> String {
    err.clone()
        .into_iter()
        .map(|e| {
            let from_env = e.metadata.as_ref().is_some_and(|m| m.name.contains("environment variable"));
            if from_env && !e.path.is_empty() {
                let key = e.path.join(".").to_lowercase();
                let variable = format!("{ENV_PREFIX}{}", e.path.join("__").to_uppercase());
                format!("{} for key \"{key}\" (set by {variable})", e.kind)
            } else {
                e.to_string().replace("\"default.", "\"")
            }
            .replace('\n', " ")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn expand_home(key: &'static str, path: &Path, home: Option<&Path>) -> Result<PathBuf, ConfigError> {
    match path.strip_prefix("~") {
        Ok(rest) => match home {
            Some(home) => Ok(home.join(rest)),
            None => Err(ConfigError::NoHome { key, value: path.to_owned() }),
        },
        Err(_) => Ok(path.to_owned()),
    }
}

/// The effective configuration as TOML, secrets redacted (what `rudder config show` prints).
pub fn render(config: &Config) -> Result<String, ConfigError> {
    toml::to_string_pretty(config).map_err(|err| ConfigError::Invalid(err.to_string()))
}

#[cfg(test)]
// figment's Jail fixes the closures' error type to figment::Error, which clippy finds large.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;
    use rudder_core::config::{LogFormat, StoreBackend};

    /// The jail starts from an empty environment (no RUDDER_* leaking in from the caller, e.g. the
    /// Makefile's RUDDER_MODELS_DIR) with a known HOME.
    fn isolate(jail: &mut Jail) {
        jail.clear_env();
        jail.set_env("HOME", "/home/tester");
    }

    fn flags_with_file(path: &str) -> ConfigFlags {
        ConfigFlags { config: Some(PathBuf::from(path)), ..ConfigFlags::default() }
    }

    #[test]
    fn defaults_alone_make_a_complete_config() {
        Jail::expect_with(|jail| {
            isolate(jail);
            let config = ConfigFlags::default().load().map_err(|e| e.to_string())?;
            assert_eq!(config.server.listen, "127.0.0.1:50051".parse().unwrap());
            assert_eq!(config.models.dir, PathBuf::from("/home/tester/.cache/rudder/models"));
            assert_eq!(config.log.format, LogFormat::Text);
            assert_eq!(config.store.backend, StoreBackend::Edge);
            Ok(())
        });
    }

    #[test]
    fn file_then_env_then_flags_each_win_over_the_layer_below() {
        Jail::expect_with(|jail| {
            isolate(jail);
            jail.create_file(
                "rudder.toml",
                "[server]\nlisten = \"127.0.0.1:7001\"\ndata_dir = \"/from/file\"\nshutdown_grace_secs = 5\n\
                 [log]\nformat = \"json\"\n",
            )?;
            jail.set_env("RUDDER__SERVER__DATA_DIR", "/from/env");
            jail.set_env("RUDDER__LOG__FILTER", "debug");
            let flags = ConfigFlags {
                listen: Some("127.0.0.1:0".parse().unwrap()),
                ..flags_with_file("rudder.toml")
            };
            let config = flags.load().map_err(|e| e.to_string())?;
            assert_eq!(config.server.listen, "127.0.0.1:0".parse().unwrap(), "flag beats file");
            assert_eq!(config.server.data_dir, PathBuf::from("/from/env"), "env beats file");
            assert_eq!(config.server.shutdown_grace_secs, 5, "file beats default");
            assert_eq!(config.log.format, LogFormat::Json);
            assert_eq!(config.log.filter, "debug");
            Ok(())
        });
    }

    #[test]
    fn models_dir_comes_from_its_own_env_var_and_the_flag_beats_it() {
        Jail::expect_with(|jail| {
            isolate(jail);
            jail.set_env(MODELS_DIR_ENV, "/models/from/env");
            let config = ConfigFlags::default().load().map_err(|e| e.to_string())?;
            assert_eq!(config.models.dir, PathBuf::from("/models/from/env"));
            let flags = ConfigFlags { models_dir: Some("/models/flag".into()), ..ConfigFlags::default() };
            assert_eq!(flags.load().map_err(|e| e.to_string())?.models.dir, PathBuf::from("/models/flag"));
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named() {
        Jail::expect_with(|jail| {
            isolate(jail);
            jail.create_file("rudder.toml", "[server]\nlisen = \"127.0.0.1:1\"\n")?;
            let err = flags_with_file("rudder.toml").load().unwrap_err().to_string();
            assert!(err.contains("lisen") && err.contains("rudder.toml"), "{err}");
            assert!(!err.contains('\n'));
            Ok(())
        });
    }

    #[test]
    fn an_unknown_env_key_is_named() {
        Jail::expect_with(|jail| {
            isolate(jail);
            jail.set_env("RUDDER__SERVER__PORT", "80");
            let err = ConfigFlags::default().load().unwrap_err().to_string();
            assert!(err.contains("port") && err.contains("RUDDER__SERVER__PORT"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_wrongly_typed_value_names_its_key() {
        Jail::expect_with(|jail| {
            isolate(jail);
            jail.set_env("RUDDER__SERVER__LISTEN", "not-an-address");
            let err = ConfigFlags::default().load().unwrap_err().to_string();
            assert!(err.contains("server.listen"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_malformed_file_is_reported_with_line_and_column() {
        Jail::expect_with(|jail| {
            isolate(jail);
            jail.create_file("broken.toml", "[server]\nlisten = \"unterminated\n")?;
            let err = flags_with_file("broken.toml").load().unwrap_err();
            assert!(matches!(err, ConfigError::Malformed { .. }), "{err}");
            let err = err.to_string();
            assert!(err.contains("broken.toml") && err.contains("line 2"), "{err}");
            assert!(!err.contains('\n'), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_silent_default() {
        Jail::expect_with(|jail| {
            isolate(jail);
            let err = flags_with_file("nope.toml").load().unwrap_err();
            assert!(matches!(err, ConfigError::MissingFile { .. }), "{err}");
            Ok(())
        });
    }

    #[test]
    fn render_redacts_the_api_key() {
        Jail::expect_with(|jail| {
            isolate(jail);
            jail.set_env("RUDDER__STORE__QDRANT__API_KEY", "s3cr3t-key");
            let config = ConfigFlags::default().load().map_err(|e| e.to_string())?;
            assert_eq!(config.store.qdrant.api_key.expose(), "s3cr3t-key");
            let shown = render(&config).map_err(|e| e.to_string())?;
            assert!(!shown.contains("s3cr3t-key") && shown.contains("[redacted]"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn the_rendered_config_reads_back_as_a_config_file() {
        Jail::expect_with(|jail| {
            isolate(jail);
            let config = ConfigFlags::default().load().map_err(|e| e.to_string())?;
            jail.create_file("shown.toml", &render(&config).map_err(|e| e.to_string())?)?;
            let again = flags_with_file("shown.toml").load().map_err(|e| e.to_string())?;
            assert_eq!(again, config);
            Ok(())
        });
    }
}
