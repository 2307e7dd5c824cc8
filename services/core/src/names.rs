//! The form region codes and brands are compared in: trimmed and lower-case, so "UK " in a request,
//! "uk" in a bundle and "Uk" in front matter are one region. Every place that reads one from outside
//! goes through here.

/// A region code as compared ("" stays "": callers decide whether it is required).
pub fn region(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// A brand as compared; None for an empty one (no brand).
pub fn brand(raw: &str) -> Option<String> {
    Some(raw.trim().to_lowercase()).filter(|b| !b.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_brands_compare_trimmed_and_lower_case() {
        assert_eq!(region(" UK "), "uk");
        assert_eq!(brand(" Outlet"), Some("outlet".to_owned()));
        assert_eq!(brand("  "), None);
    }
}
