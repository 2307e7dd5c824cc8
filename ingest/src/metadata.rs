//! Per-document metadata: the partial form each source gives (the request or CLI flags, Markdown
//! front matter, a sidecar `NAME.meta.toml`), their merge in the order the proto documents (request,
//! then front matter, then sidecar: the first non-empty value of each field wins), and the resolved,
//! validated form every chunk's payload is built from.

use crate::error::IngestError;
use serde::Deserialize;
use std::collections::BTreeSet;

/// Metadata as one source gives it: every field optional, empty means "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialMetadata {
    #[serde(default)]
    pub doc_id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub brand: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    /// A version label or an effective date; TOML dates are accepted and written as `YYYY-MM-DD`.
    #[serde(default, alias = "effective_date", deserialize_with = "version_text")]
    pub version: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A version as TOML may spell it: a string, an integer or a date (written back as `YYYY-MM-DD`).
fn version_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    Ok(match Option::<toml::Value>::deserialize(deserializer)? {
        None => None,
        Some(toml::Value::String(text)) => Some(text),
        Some(toml::Value::Integer(number)) => Some(number.to_string()),
        Some(toml::Value::Float(number)) => Some(number.to_string()),
        Some(toml::Value::Datetime(date)) => Some(date.to_string()),
        Some(other) => {
            return Err(D::Error::custom(format!(
                "version must be a string or a date, not {}",
                other.type_str()
            )));
        }
    })
}

impl PartialMetadata {
    /// Metadata from a sidecar `NAME.meta.toml`: rudder's own format, so an unknown key is an error
    /// (a typo is caught) where front matter would only note it. `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, IngestError> {
        toml::from_str(text).map_err(|err| {
            IngestError::invalid(
                "metadata",
                format!("{origin} is not valid metadata TOML: {}", err.message()),
            )
        })
    }

    /// `self` with every empty field filled from `fallback`.
    pub fn or(self, fallback: Self) -> Self {
        fn pick(value: Option<String>, fallback: Option<String>) -> Option<String> {
            value.filter(|v| !v.trim().is_empty()).or(fallback.filter(|v| !v.trim().is_empty()))
        }
        fn pick_list(value: Vec<String>, fallback: Vec<String>) -> Vec<String> {
            if value.is_empty() { fallback } else { value }
        }
        Self {
            doc_id: pick(self.doc_id, fallback.doc_id),
            title: pick(self.title, fallback.title),
            source: pick(self.source, fallback.source),
            regions: pick_list(self.regions, fallback.regions),
            brand: pick(self.brand, fallback.brand),
            language: pick(self.language, fallback.language),
            version: pick(self.version, fallback.version),
            tags: pick_list(self.tags, fallback.tags),
        }
    }

    /// The label of the version if one was given.
    pub fn version_label(&self) -> Option<String> {
        self.version.clone().filter(|v| !v.trim().is_empty())
    }
}

/// Metadata every chunk of a document carries, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentMetadata {
    pub doc_id: String,
    pub title: String,
    pub source: String,
    /// Lower-case, deduplicated, in the order given.
    pub regions: Vec<String>,
    pub brand: Option<String>,
    pub language: String,
    pub version: String,
    /// Whether the version was given (by any source) rather than derived from the content hash.
    pub version_given: bool,
    pub tags: Vec<String>,
}

/// What resolution needs besides the merged metadata.
#[derive(Debug, Clone, Copy)]
pub struct ResolveContext<'a> {
    /// The uploaded file's name: a path relative to the directory the client walked
    /// (`refund/hey/index.md`) or a bare file name. The default `source`, and the default doc_id
    /// through [`default_doc_id`].
    pub file_name: &'a str,
    /// A title found in the document itself (its first top-level heading, an HTML `<title>`).
    pub title_hint: Option<&'a str>,
    pub content_sha256: &'a str,
    pub known_regions: &'a [String],
}

const MAX_ID_LEN: usize = 128;

/// Fills defaults (doc_id from the file name, see [`default_doc_id`]; title, source, language "en",
/// version from the content hash) and validates what the store and retrieval rely on.
pub fn resolve(meta: PartialMetadata, cx: ResolveContext<'_>) -> Result<DocumentMetadata, IngestError> {
    let version_label = meta.version_label();
    let PartialMetadata { doc_id, title, source, regions, brand, language, version: _, tags } = meta;
    let doc_id = doc_id
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .or_else(|| default_doc_id(cx.file_name));
    let doc_id = doc_id.ok_or_else(|| {
        IngestError::invalid("metadata.doc_id", "missing: give doc_id, or a file name to take it from")
    })?;
    check_doc_id(&doc_id)?;

    let mut seen = BTreeSet::new();
    let mut clean_regions = Vec::new();
    for region in regions {
        let region = rudder_core::names::region(&region);
        if region.is_empty() {
            return Err(IngestError::invalid("metadata.regions", "a region is empty"));
        }
        if !cx.known_regions.iter().any(|known| known.eq_ignore_ascii_case(&region)) {
            return Err(IngestError::UnknownRegion { region, known: cx.known_regions.to_vec() });
        }
        if seen.insert(region.clone()) {
            clean_regions.push(region);
        }
    }
    if clean_regions.is_empty() {
        return Err(IngestError::invalid("metadata.regions", "at least one region is required"));
    }

    let brand = brand.as_deref().and_then(rudder_core::names::brand);
    if let Some(brand) = &brand {
        check_identifier("metadata.brand", brand)?;
    }
    let version_given = version_label.is_some();
    let version = match version_label {
        Some(version) => version.trim().to_owned(),
        // The proto's default: the content hash's first 12 hex digits.
        None => cx.content_sha256.chars().take(12).collect(),
    };
    check_identifier("metadata.version", &version)?;
    let title = title
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .or_else(|| cx.title_hint.map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned))
        .unwrap_or_else(|| doc_id.clone());
    let source = source.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let source = source.unwrap_or_else(|| cx.file_name.to_owned());
    let language = language.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty());
    let mut clean_tags: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        if !tag.is_empty() && !clean_tags.contains(&tag) {
            clean_tags.push(tag);
        }
    }
    Ok(DocumentMetadata {
        doc_id,
        title,
        source,
        regions: clean_regions,
        brand,
        language: language.unwrap_or_else(|| "en".to_owned()),
        version,
        version_given,
        tags: clean_tags,
    })
}

/// The doc_id of a document that names none, from the name it was uploaded under: the path without
/// its extension, with a last `index` segment dropped when a folder comes before it, so a static
/// site's pages are named by their folder: `refund/index.md` -> `refund`,
/// `privacy/regulations/ccpa/index.md` -> `privacy/regulations/ccpa`, `security/overview.pdf` ->
/// `security/overview`, a root `index.md` -> `index`, a bare `returns-uk.md` -> `returns-uk`. `\`
/// counts as `/`, empty and `.` segments are dropped, and a character a doc_id may not hold (a
/// space, say) becomes `-`.
pub fn default_doc_id(file_name: &str) -> Option<String> {
    let normalised = file_name.replace('\\', "/");
    let mut segments: Vec<&str> =
        normalised.split('/').filter(|segment| !segment.is_empty() && *segment != ".").collect();
    let last = segments.pop()?;
    let stem = match last.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => last,
    };
    if stem != "index" || segments.is_empty() {
        segments.push(stem);
    }
    let id: String =
        segments.join("/").chars().map(|c| if c == '/' || identifier_char(c) { c } else { '-' }).collect();
    Some(id)
}

fn identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// A doc_id is an identifier that may also have `/`-separated segments (`refund/hey`), none of them
/// empty, `.` or `..`.
fn check_doc_id(value: &str) -> Result<(), IngestError> {
    const FIELD: &str = "metadata.doc_id";
    if value.len() > MAX_ID_LEN {
        return Err(IngestError::invalid(FIELD, format!("longer than {MAX_ID_LEN} characters")));
    }
    if let Some(bad) = value.chars().find(|&c| !(c == '/' || identifier_char(c))) {
        return Err(IngestError::invalid(
            FIELD,
            format!("{value:?} contains {bad:?}; use letters, digits, '-', '_', '.', ':' or '/'"),
        ));
    }
    if value.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return Err(IngestError::invalid(
            FIELD,
            format!("{value:?}: each '/'-separated part must be a name, not empty, '.' or '..'"),
        ));
    }
    Ok(())
}

/// Ids travel in payload filters and point-id names: keep them to a safe, readable alphabet.
fn check_identifier(field: &'static str, value: &str) -> Result<(), IngestError> {
    if value.len() > MAX_ID_LEN {
        return Err(IngestError::invalid(field, format!("longer than {MAX_ID_LEN} characters")));
    }
    if let Some(bad) = value.chars().find(|&c| !identifier_char(c)) {
        return Err(IngestError::invalid(
            field,
            format!("{value:?} contains {bad:?}; use letters, digits, '-', '_', '.' or ':'"),
        ));
    }
    Ok(())
}
