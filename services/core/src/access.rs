//! Who is asking and what they may touch: the authenticated principal of a request (its key's id,
//! role and region/brand scope), which the server's authentication layer puts into the request and
//! handlers read to keep a caller inside its regions and to write its identity into the audit log.
//! Which role may call which RPC is the server's (it maps gRPC methods); what a scope allows is here.

use crate::ServiceError;

/// What a key may do, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Ask (Generate, GenerateOnce, Retrieve) and rate answers (SubmitFeedback).
    Agent,
    /// Ingest, delete and read documents.
    Editor,
    /// Publish, evaluate, activate, promote, abort and roll back bundles.
    PromptOwner,
    /// Read-only: audit log, feedback, listings.
    Auditor,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Agent, Role::Editor, Role::PromptOwner, Role::Auditor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Editor => "editor",
            Role::PromptOwner => "prompt-owner",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name.trim())
    }
}

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id (never the key): what the audit log records.
    pub id: String,
    pub role: Role,
    /// Regions it may touch; empty: all.
    pub regions: Vec<String>,
    /// Brands it may touch; empty: all.
    pub brands: Vec<String>,
}

impl Principal {
    /// The caller when authentication is off (a loopback server without keys): everything allowed.
    pub fn local() -> Self {
        Self { id: "local".into(), role: Role::Admin, regions: Vec::new(), brands: Vec::new() }
    }

    /// Who did something, for a log or a record: the authenticated key's id, with a different name
    /// the request claims kept beside it ("owner-uk (as mallory)"); with authentication off (the
    /// local principal), the claimed name.
    pub fn named_actor(&self, claimed: &str) -> String {
        let claimed = claimed.trim();
        if *self == Self::local() {
            claimed.to_owned()
        } else if claimed.is_empty() || claimed == self.id {
            self.id.clone()
        } else {
            format!("{} (as {claimed})", self.id)
        }
    }

    /// Whether the caller may touch `region` (and `brand`, when the request names one).
    pub fn covers(&self, region: &str, brand: Option<&str>) -> bool {
        let region = crate::names::region(region);
        let in_regions = self.regions.is_empty() || self.regions.contains(&region);
        let in_brands = self.brands.is_empty()
            || brand.and_then(crate::names::brand).is_none_or(|b| self.brands.contains(&b));
        in_regions && in_brands
    }

    /// PERMISSION_DENIED naming the region (or brand) outside the caller's scope.
    pub fn check(&self, region: &str, brand: Option<&str>) -> Result<(), ServiceError> {
        if self.covers(region, brand) {
            return Ok(());
        }
        let brand = brand.map(str::trim).filter(|b| !b.is_empty());
        Err(ServiceError::PermissionDenied(format!(
            "key {:?} may not touch {}{} (its scope: regions {}, brands {})",
            self.id,
            region.trim(),
            brand.map(|b| format!("/{b}")).unwrap_or_default(),
            list(&self.regions),
            list(&self.brands),
        )))
    }
}

impl Principal {
    /// The region a listing may cover: the one asked for (empty: all), within the caller's scope; a
    /// caller scoped to one region lists it without naming it.
    pub fn listing_region(&self, region: &str) -> Result<Option<String>, ServiceError> {
        let region = crate::names::region(region);
        if !region.is_empty() {
            self.check(&region, None)?;
            return Ok(Some(region));
        }
        match self.regions.as_slice() {
            [] => Ok(None),
            [only] => Ok(Some(only.clone())),
            _ => Err(ServiceError::PermissionDenied(format!(
                "key {:?} covers several regions: name one of {}",
                self.id,
                self.regions.join(", ")
            ))),
        }
    }

    /// Whether the caller may read something that belongs to `regions` (any of them in scope).
    pub fn reads_any(&self, regions: &[String]) -> bool {
        self.regions.is_empty() || regions.iter().any(|r| self.regions.contains(r))
    }

    /// The brand a request works under: the one it names (checked), or, when it names none, the
    /// caller's only brand (an empty brand would reach every brand's documents).
    pub fn brand_for(&self, brand: Option<String>) -> Result<Option<String>, ServiceError> {
        match (brand, self.brands.as_slice()) {
            (Some(brand), _) if self.brands.is_empty() || self.brands.contains(&brand) => Ok(Some(brand)),
            (None, []) => Ok(None),
            (None, [only]) => Ok(Some(only.clone())),
            (brand, _) => Err(ServiceError::PermissionDenied(format!(
                "key {:?} may touch brands {} only{}",
                self.id,
                self.brands.join(", "),
                brand.map(|b| format!(", not {b}")).unwrap_or_else(|| ": name one".into())
            ))),
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "all".to_owned() } else { items.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(regions: &[&str], brands: &[&str]) -> Principal {
        Principal {
            id: "agent-1".into(),
            role: Role::Agent,
            regions: regions.iter().map(|r| r.to_string()).collect(),
            brands: brands.iter().map(|b| b.to_string()).collect(),
        }
    }

    #[test]
    fn a_scope_covers_its_regions_and_brands_only() {
        let uk = agent(&["uk"], &[]);
        assert!(uk.covers("UK ", None) && uk.covers("uk", Some("outlet")));
        assert!(!uk.covers("us", None));
        let outlet = agent(&["uk"], &["outlet"]);
        assert!(outlet.covers("uk", Some("Outlet")) && outlet.covers("uk", None));
        assert!(!outlet.covers("uk", Some("acme")));
        let denied = outlet.check("us", Some("acme")).unwrap_err();
        assert!(
            matches!(&denied, ServiceError::PermissionDenied(m) if m.contains("us/acme") && m.contains("agent-1")),
            "{denied}"
        );
        assert!(Principal::local().covers("anything", Some("any")));
        assert_eq!(
            outlet.brand_for(None).unwrap().as_deref(),
            Some("outlet"),
            "an empty brand means the key's only one"
        );
        assert!(outlet.brand_for(Some("acme".into())).is_err());
        assert_eq!(uk.brand_for(None).unwrap(), None);
    }

    #[test]
    fn roles_read_and_write_their_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
