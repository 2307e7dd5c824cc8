//! Tests of the bundle registry (kept beside it: `registry.rs` holds the code).
use super::*;
use crate::bundles::gate::GateCheck;

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn uk() -> BundleKey {
    BundleKey { region: "uk".into(), brand: None }
}

fn by(actor: &str, reason: &str) -> ChangeBy {
    ChangeBy { actor: actor.into(), reason: reason.into() }
}

struct Fixture {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    paths: RegistryPaths,
}

/// Shipped uk v1 and v2 (text only).
fn fixture() -> Fixture {
    let shipped = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    write(shipped.path(), "uk/v1/bundle.toml", "system_text = \"one\"\n");
    write(shipped.path(), "uk/v2/bundle.toml", "system_text = \"two\"\n");
    let paths = RegistryPaths {
        shipped: shipped.path().to_owned(),
        state_dir: state.path().to_owned(),
        eval_data: shipped.path().join("no-data"),
    };
    Fixture { _dirs: (shipped, state), paths }
}

fn publish(registry: &Registry, text: &str) -> u32 {
    let toml = format!("system_text = {text:?}\n");
    registry
        .publish(&uk(), &by("ann", "new"), |dir| {
            std::fs::write(dir.join(file::BUNDLE_FILE), &toml)
                .map_err(|e| ServiceError::Internal(e.to_string()))
        })
        .unwrap()
        .bundle
        .version
}

fn activate(registry: &Registry, version: u32, percent: u32) -> Result<BundleSummary, ServiceError> {
    let guard = registry.begin_activation(&uk())?;
    registry.activate(&guard, version, percent, &GateOutcome::NotNeeded, false, &by("bob", "go"))
}

fn served_text(registry: &Registry) -> String {
    registry.resolve(&uk(), None).unwrap().system_text.clone()
}

#[test]
fn a_new_region_starts_on_its_highest_version_and_a_publish_does_not_activate() {
    let f = fixture();
    let registry = Registry::open(f.paths.clone()).unwrap();
    assert_eq!(served_text(&registry), "two");
    assert_eq!(publish(&registry, "three"), 3);
    assert_eq!(served_text(&registry), "two", "published, not active");
    assert_eq!(registry.resolve(&uk(), Some(3)).unwrap().system_text, "three", "but reachable by version");
    assert_eq!(registry.summary(&uk()).unwrap().versions, [1, 2, 3]);
}

#[test]
fn activation_and_rollback_survive_a_restart_and_are_audited() {
    let f = fixture();
    let registry = Registry::open(f.paths.clone()).unwrap();
    let v3 = publish(&registry, "three");
    activate(&registry, v3, 100).unwrap();
    assert_eq!(served_text(&registry), "three");
    let in_flight = registry.resolve(&uk(), None).unwrap();
    let summary = registry.rollback(&uk(), &by("carol", "complaints")).unwrap();
    assert_eq!(summary.active, 2);
    assert_eq!(in_flight.system_text, "three", "a request holds the version it started with");
    drop(registry);

    let reopened = Registry::open(f.paths.clone()).unwrap();
    assert_eq!(served_text(&reopened), "two");
    let err = reopened.rollback(&uk(), &by("dan", "again")).unwrap_err();
    assert!(matches!(err, ServiceError::FailedPrecondition(_)), "{err}");
    assert_eq!(served_text(&reopened), "two", "a refused rollback changes nothing");
    let (log, _) = reopened.audit_page(Some("uk"), None, 10, "").unwrap();
    let actions: Vec<(AuditAction, u32, u32, &str)> =
        log.iter().map(|e| (e.action, e.from_version, e.to_version, e.actor.as_str())).collect();
    assert_eq!(
        actions,
        [
            (AuditAction::Rollback, 3, 2, "carol"),
            (AuditAction::Activate, 2, 3, "bob"),
            (AuditAction::Publish, 0, 3, "ann")
        ]
    );
}

#[test]
fn unknown_versions_and_a_racing_activation_are_refused_without_change() {
    let f = fixture();
    let registry = Registry::open(f.paths.clone()).unwrap();
    assert!(matches!(activate(&registry, 9, 100), Err(ServiceError::NotFound { .. })));
    assert!(matches!(activate(&registry, 1, 101), Err(ServiceError::InvalidArgument { .. })));
    let first = registry.begin_activation(&uk()).unwrap();
    let err = activate(&registry, 1, 100).unwrap_err();
    assert!(err.to_string().contains("another activation"), "{err}");
    assert!(registry.rollback(&uk(), &by("x", "")).is_err(), "a rollback waits for the slot too");
    drop(first);
    assert_eq!(served_text(&registry), "two");
    assert!(activate(&registry, 1, 100).is_ok(), "the slot is free once the first one ends");
}

#[test]
fn a_published_new_brand_waits_for_activation_even_across_a_restart() {
    let f = fixture();
    let registry = Registry::open(f.paths.clone()).unwrap();
    let acme = BundleKey { region: "uk".into(), brand: Some("acme".into()) };
    let published = registry
        .publish(&acme, &by("ann", ""), |dir| {
            std::fs::write(dir.join(file::BUNDLE_FILE), "system_text = \"acme\"\n")
                .map_err(|e| ServiceError::Internal(e.to_string()))
        })
        .unwrap();
    assert_eq!(published.bundle.id(), "uk/acme@1");
    assert!(matches!(registry.resolve(&acme, None), Err(ServiceError::NotFound { .. })), "not active yet");
    drop(registry);
    let registry = Registry::open(f.paths.clone()).unwrap();
    assert!(registry.resolve(&acme, None).is_err(), "a restart does not start it either");
    let guard = registry.begin_activation(&acme).unwrap();
    registry.activate(&guard, 1, 100, &GateOutcome::NotNeeded, false, &by("bob", "launch")).unwrap();
    drop(guard);
    assert_eq!(registry.resolve(&acme, None).unwrap().system_text, "acme");
    let err = registry.rollback(&acme, &by("bob", "")).unwrap_err();
    assert!(matches!(err, ServiceError::FailedPrecondition(_)), "nothing to roll back to: {err}");
}

#[test]
fn changes_to_an_unknown_region_are_not_found_and_do_not_hang() {
    let f = fixture();
    let registry = Registry::open(f.paths.clone()).unwrap();
    let nowhere = BundleKey { region: "nowhere".into(), brand: None };
    for result in [
        registry.rollback(&nowhere, &by("a", "")),
        registry.promote(&nowhere, &by("a", "")),
        registry.abort_candidate(&nowhere, &by("a", "")),
    ] {
        assert!(
            matches!(&result, Err(ServiceError::NotFound { known, .. }) if known == &["uk"]),
            "{result:?}"
        );
    }
    assert!(matches!(registry.resolve(&nowhere, None), Err(ServiceError::NotFound { .. })));
    assert_eq!(served_text(&registry), "two", "and the registry still answers");
}

#[test]
fn the_gate_refuses_a_worse_candidate_unless_forced_with_a_reason() {
    let f = fixture();
    let registry = Registry::open(f.paths.clone()).unwrap();
    let worse = GateOutcome::Checked(vec![GateCheck {
        metric: "heldout_nll".into(),
        candidate: 1.5,
        active: 1.0,
        tolerance: 0.05,
        passed: false,
    }]);
    let guard = registry.begin_activation(&uk()).unwrap();
    let err = registry.activate(&guard, 1, 100, &worse, false, &by("eve", "")).unwrap_err();
    assert!(err.to_string().contains("heldout_nll 1.500 vs active 1.000"), "{err}");
    let err = registry.activate(&guard, 1, 100, &worse, true, &by("eve", " ")).unwrap_err();
    assert!(matches!(&err, ServiceError::InvalidArgument { field, .. } if field == "reason"), "{err}");
    assert_eq!(served_text(&registry), "two");
    registry.activate(&guard, 1, 100, &worse, true, &by("eve", "legal asked for it")).unwrap();
    assert_eq!(served_text(&registry), "one");
    let (log, _) = registry.audit_page(None, None, 1, "").unwrap();
    assert!(log[0].forced && log[0].reason == "legal asked for it");
}

#[test]
fn an_ab_candidate_gets_a_sticky_share_and_can_be_promoted_or_aborted() {
    let f = fixture();
    let registry = Registry::open(f.paths.clone()).unwrap();
    activate(&registry, 1, 20).unwrap();
    let routed = |conversation: &str| registry.route(&uk(), None, conversation).unwrap().version;
    let on_candidate = (0..1000).filter(|i| routed(&format!("conv-{i}")) == 1).count();
    assert!((120..=280).contains(&on_candidate), "about 20% of 1000 conversations: {on_candidate}");
    for i in 0..50 {
        let id = format!("conv-{i}");
        assert_eq!(routed(&id), routed(&id), "sticky per conversation");
    }
    assert_eq!(registry.route(&uk(), Some(2), "conv-1").unwrap().version, 2, "a pinned version wins");
    let summary = registry.abort_candidate(&uk(), &by("f", "")).unwrap();
    assert_eq!((summary.active, summary.candidate), (2, None));
    assert!(registry.promote(&uk(), &by("f", "")).is_err(), "nothing to promote");
    activate(&registry, 1, 50).unwrap();
    let summary = registry.promote(&uk(), &by("f", "looks good")).unwrap();
    assert_eq!((summary.active, summary.candidate), (1, None));
    assert_eq!(registry.rollback(&uk(), &by("f", "")).unwrap().active, 2);
}

#[test]
fn a_failed_publish_leaves_nothing_and_a_version_changed_on_disk_keeps_serving() {
    let f = fixture();
    let registry = Registry::open(f.paths.clone()).unwrap();
    let err = registry
        .publish(&uk(), &by("ann", ""), |dir| {
            std::fs::write(dir.join(file::BUNDLE_FILE), "system_text = \"\"\n").unwrap();
            Ok(())
        })
        .unwrap_err();
    assert!(err.to_string().contains("system_text is empty"), "{err}");
    let published = std::fs::read_dir(registry.published_dir().join("uk")).unwrap().count();
    assert_eq!(published, 0, "no partial directory left behind");
    assert!(registry.audit_page(None, None, 0, "").unwrap().0.is_empty(), "nothing audited");

    write(&f.paths.shipped, "uk/v2/bundle.toml", "system_text = \"edited\"\n");
    write(&f.paths.shipped, "uk/v4/bundle.toml", "system_text = \"four\"\n");
    let reloaded = registry.reload(&by("ops", "")).unwrap();
    assert_eq!(reloaded, Reloaded { added: vec!["uk@4".into()], changed: vec!["uk@2".into()] });
    assert_eq!(served_text(&registry), "two", "the changed version serves what it was");
    assert_eq!(publish(&registry, "five"), 5, "numbering continues after versions found on disk");
}
