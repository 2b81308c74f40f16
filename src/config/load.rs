//! Where settings come from: the defaults, the TOML file, `KILLBILL_AUTH_*` variables (and
//! `…_FILE` ones naming a file to read), in that order; figment's errors said in the words of
//! the configuration; and the effective configuration written back (`serve --check-config`).

use super::*;

impl Settings {
    /// Defaults, then the TOML file (if any), then `KILLBILL_AUTH_*` variables; then validation.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        // A variable that is not valid Unicode cannot be a setting of ours; skip it rather than panic.
        let vars =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::load_from(file, vars)
    }

    /// [`Settings::load`] with the environment given explicitly (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file = match file {
            Some(path) if !path.is_file() => {
                return Err(ConfigError::Parse(format!("file {} not found", path.display())))
            }
            Some(path) => Some(Toml::file_exact(path)),
            None => None,
        };
        Self::extract(file, env)
    }

    /// Settings from TOML text and no environment (for tools and fuzzing).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::extract(Some(Toml::string(text)), Vec::new())
    }

    fn extract(
        file: Option<figment::providers::Data<Toml>>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let mut pepper_in_file = false;
        if let Some(file) = file {
            pepper_in_file = file.data().is_ok_and(|profiles| {
                profiles.values().any(|dict| {
                    matches!(dict.get("password"), Some(Value::Dict(_, password)) if password.contains_key("pepper"))
                })
            });
            figment = figment.merge(file);
        }
        let vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        for (name, value) in read_file_variables(vars)? {
            figment = figment.merge(EnvVar { name, value });
        }
        let mut settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Parse(flatten_figment_error(e)))?;
        settings.pepper_in_file = pepper_in_file;
        settings.validate()?;
        Ok(settings)
    }

    /// The effective configuration as TOML (`serve --check-config`): every section and key in
    /// the documented order, database URLs with their password redacted ([`redact_url`]), the
    /// pepper only as a comment saying whether it is set, never its value. The text loads back
    /// ([`Settings::from_toml_str`]) to the same settings, less the secrets.
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        #[derive(Serialize)]
        struct Database {
            url: String,
            max_connections: u32,
            listen_url: String,
        }
        fn section<T: Serialize>(out: &mut String, name: &str, value: &T) -> Result<(), ConfigError> {
            let body = toml::to_string(value)
                .map_err(|e| ConfigError::Parse(format!("cannot write section [{name}]: {e}")))?;
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{name}]\n{body}"));
            Ok(())
        }
        let mut out = String::new();
        section(&mut out, "server", &self.server)?;
        section(
            &mut out,
            "database",
            &Database {
                url: redact_url(&self.database.url),
                max_connections: self.database.max_connections,
                listen_url: redact_url(&self.database.listen_url),
            },
        )?;
        section(&mut out, "keys", &self.keys)?;
        section(&mut out, "tickets", &self.tickets)?;
        section(&mut out, "events", &self.events)?;
        section(&mut out, "anomaly", &self.anomaly)?;
        section(&mut out, "rate_limit", &self.rate_limit)?;
        section(&mut out, "throttle", &self.throttle)?;
        section(&mut out, "password", &self.password)?;
        out.push_str(match self.password.pepper {
            Some(_) => "# pepper: set (its value is never shown)\n",
            None => "# pepper: not set\n",
        });
        Ok(out)
    }
}

/// Suffix of a variable whose value is read from a file: `KILLBILL_AUTH_DATABASE_URL_FILE=/run/secrets/db`
/// sets `database.url` to the file's contents, its trailing newline removed (how containers hand
/// secrets over). Sorted by name, so that the order of the environment does not matter.
const FILE_SUFFIX: &str = "_FILE";

/// Replaces each `…_FILE` variable by the variable it names, with the file's contents. Setting
/// both forms of one key is an error (which one wins would be a guess); so is a file that cannot
/// be read. Error messages name the variable and the path, never the contents (a secret).
fn read_file_variables(vars: Vec<(String, String)>) -> Result<Vec<(String, String)>, ConfigError> {
    let direct: std::collections::HashSet<&str> = vars
        .iter()
        .filter(|(k, _)| !k.ends_with(FILE_SUFFIX))
        .map(|(k, _)| k.as_str())
        .collect();
    let mut out = Vec::with_capacity(vars.len());
    for (name, value) in &vars {
        let Some(target) = name.strip_suffix(FILE_SUFFIX) else {
            out.push((name.clone(), value.clone()));
            continue;
        };
        if direct.contains(target) {
            return Err(ConfigError::Parse(format!(
                "both {target} and {name} are set; set one of them"
            )));
        }
        let mut text = std::fs::read_to_string(value).map_err(|e| {
            ConfigError::Parse(format!("environment variable {name}: cannot read {value}: {e}"))
        })?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        out.push((target.to_owned(), text));
    }
    out.sort();
    Ok(out)
}

/// `ANOMALY_MAX_NETWORKS` → `anomaly.max_networks`; a name with no known section is kept as it
/// is, so that `deny_unknown_fields` reports it by name.
fn env_key_path(rest: &str) -> String {
    let lower = rest.to_ascii_lowercase();
    for section in SECTIONS {
        if let Some(key) = lower.strip_prefix(section).and_then(|r| r.strip_prefix('_')) {
            return format!("{section}.{key}");
        }
    }
    lower
}

/// Keys whose values are text even when they look like a number (a pepper of digits, say).
const STRING_KEYS: [&str; 14] = [
    "server.listen",
    "server.request_head_timeout",
    "server.request_timeout",
    "server.keep_alive_timeout",
    "database.url",
    "database.outage_grace",
    "password.pepper",
    "keys.lifetime",
    "keys.idle_timeout",
    "tickets.lifetime",
    "anomaly.window",
    "anomaly.flood_window",
    "throttle.signin_failure_window",
    "throttle.signup_window",
];

/// One `KILLBILL_AUTH_*` variable as a figment provider, so that errors name the variable.
struct EnvVar {
    name: String,
    value: String,
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let path = env_key_path(&self.name[ENV_PREFIX.len()..]);
        // Values read like TOML scalars (`3`, `true`, `["10.0.0.2"]`); anything else is a string.
        // A backslash is never part of a valid number, boolean, duration or address list, and
        // figment's parser panics on one after a non-ASCII character (found by the proptest
        // below): such a value stays a string, and the type check names the variable.
        let value: Value = if STRING_KEYS.contains(&path.as_str()) || self.value.contains('\\') {
            Value::from(self.value.clone())
        } else {
            match self.value.parse() {
                Ok(v) => v,
                Err(never) => match never {},
            }
        };
        match figment::util::nest(&path, value) {
            Value::Dict(_, dict) => Ok(Profile::Default.collect(dict)),
            _ => Err(figment::Error::from(format!(
                "{} is not a configuration key",
                self.name
            ))),
        }
    }
}

fn flatten_figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| describe_figment_error(&e))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One configuration error in an operator's words: the key as written in the file
/// (`server.listn`, never figment's profile prefix), where it came from, and for an unknown key
/// the nearest valid one.
fn describe_figment_error(e: &figment::Error) -> String {
    use figment::error::Kind;
    let key = e.path.join(".");
    let place = match &e.metadata {
        Some(md) => match &md.source {
            Some(figment::Source::File(path)) => format!(" in {}", path.display()),
            Some(source) => format!(" in {source}"),
            None => format!(" in {}", md.name),
        },
        None => String::new(),
    };
    match &e.kind {
        Kind::UnknownField(field, expected) => {
            let section = e
                .path
                .split_last()
                .map(|(_, rest)| rest.join("."))
                .unwrap_or_default();
            let full = |name: &str| {
                if section.is_empty() {
                    name.to_owned()
                } else {
                    format!("{section}.{name}")
                }
            };
            let nearest = expected
                .iter()
                .map(|candidate| (strsim::levenshtein(field, candidate), *candidate))
                .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(2))
                .min();
            let key = if key.is_empty() { full(field) } else { key };
            match nearest {
                Some((_, name)) => format!("unknown key `{key}`{place}: did you mean `{}`?", full(name)),
                None => format!(
                    "unknown key `{key}`{place}: the keys here are {}",
                    expected
                        .iter()
                        .map(|n| format!("`{}`", full(n)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        kind if key.is_empty() => format!("{kind}{place}"),
        kind => format!("`{key}`{place}: {kind}"),
    }
}
