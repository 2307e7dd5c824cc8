//! Front matter as real sites write it: keys rudder knows map to metadata, every other key (and a
//! known key in a shape rudder cannot use) is left out with a note, and front matter that cannot be
//! read fails its document naming the line in the file. Also the Markdown cleanup of what a reader
//! of the rendered page does not see: link targets and template placeholders.

use rudder_ingest::{
    IngestError,
    loaders::{self, LoadedDocument, MediaType},
};

fn load(markdown: &str) -> Result<LoadedDocument, IngestError> {
    loaders::load(MediaType::Markdown, markdown.as_bytes())
}

fn failure(markdown: &str) -> String {
    match load(markdown) {
        Err(IngestError::Invalid { field: "metadata", reason }) => reason,
        other => panic!("expected a metadata error, got {other:?}"),
    }
}

#[test]
fn a_jekyll_page_s_keys_are_noted_not_refused() {
    // What Jekyll and Hugo pages carry, every shape of YAML front matter seen in the wild.
    let page = "---\n\
                title: 'How to manage: the HEY account'\n\
                description: \"Learn about how and when we offer refunds, \\\"fairly\\\".\"\n\
                layout: default\n\
                permalink: /refund/\n\
                date: 2024-01-31 10:00:00 +0000\n\
                regions: [us, \"uk\"]  # where it applies\n\
                tags:\n  - refunds\n  - 'billing'\n\
                categories:\n  policies: true\n  weight: 3\n\
                authors:\n  - name: Ann\n    handle: ann\n\
                summary: >-\n  A folded\n  summary.\n\
                sitemap: {priority: 0.5}\n\
                excerpt: A plain value\n  continued on an indented line\n\
                # a comment\n\
                empty:\n\
                ---\n\
                # Refunds\n\nWe refund within 30 days.\n";
    let document = load(page).unwrap();
    let front = document.front_matter.clone().unwrap();
    assert_eq!(front.title.as_deref(), Some("How to manage: the HEY account"));
    assert_eq!(front.regions, ["us", "uk"]);
    assert_eq!(front.tags, ["refunds", "billing"]);
    assert_eq!(front.doc_id, None);
    assert_eq!(
        document.notes,
        ["ignored front matter keys: description, layout, permalink, date, \
          categories, authors, summary, sitemap, excerpt, empty"]
    );
    assert_eq!(document.normalised_text(), "Refunds\n\nWe refund within 30 days.");
}

#[test]
fn known_keys_in_shapes_rudder_cannot_use_are_noted() {
    let page =
        "---\ntitle: Refunds\ntags:\n  billing: yes\nregions:\n  - name: us\nbrand: [a, b]\n---\nText.\n";
    let document = load(page).unwrap();
    let front = document.front_matter.unwrap();
    assert_eq!((front.title.as_deref(), front.tags.len(), front.regions.len()), (Some("Refunds"), 0, 0));
    assert_eq!(
        document.notes,
        ["ignored front matter keys: tags (a mapping), \
          regions (a list of lists or mappings), brand (a list)"]
    );
    // A scalar where a list is expected is a list of one.
    let single = load("---\ntags: refunds\nregions: us\n---\nText.\n").unwrap().front_matter.unwrap();
    assert_eq!((single.tags, single.regions), (vec!["refunds".to_owned()], vec!["us".to_owned()]));
}

#[test]
fn toml_front_matter_notes_unknown_keys_and_keeps_dates() {
    let page = "+++\ndoc_id = \"faq\"\nversion = 2026-03-01\ndraft = false\n[params]\nx = 1\n+++\nText.\n";
    let document = load(page).unwrap();
    let front = document.front_matter.unwrap();
    assert_eq!((front.doc_id.as_deref(), front.version.as_deref()), (Some("faq"), Some("2026-03-01")));
    assert_eq!(document.notes, ["ignored front matter keys: draft, params"]);
}

#[test]
fn an_opening_fence_with_trailing_spaces_still_opens_front_matter() {
    // privacy/regulations/ccpa/index.md of the Basecamp policies opens with "--- ".
    let document =
        load("--- \ntitle: California Notice\ndescription: x\n---\n\n# Notice\n\nText.\n").unwrap();
    assert_eq!(document.front_matter.clone().unwrap().title.as_deref(), Some("California Notice"));
    assert!(!document.normalised_text().contains("description"), "{}", document.normalised_text());
}

#[test]
fn malformed_front_matter_fails_with_its_line_in_the_file() {
    let cases = [
        (
            "---\ntitle: ok\nthis line has no colon\n---\nText.\n",
            "front matter line 3",
            "expected `key: value`",
        ),
        ("---\ntitle: 'unclosed\n---\nText.\n", "front matter line 2", "not closed"),
        ("---\ntitle: a\ntitle: b\n---\nText.\n", "front matter line 3", "given twice (first on line 2)"),
        ("---\n\n- item\n---\nText.\n", "front matter line 3", "list item outside a list"),
        ("---\nregions: [us, uk\n---\nText.\n", "front matter line 2", "not closed with ]"),
        ("---\ntitle: \"x\" trailing\n---\nText.\n", "front matter line 2", "after the closing"),
        ("+++\ntitle = \"x\"\nregions = us\n+++\nText.\n", "front matter line 3", "not valid TOML"),
        ("---\ntitle: never closed\n\nText.\n", "never closed", "line 1"),
    ];
    for (page, line, why) in cases {
        let reason = failure(page);
        assert!(reason.contains(line) && reason.contains(why), "{page:?}: {reason}");
    }
}

#[test]
fn link_targets_and_template_placeholders_leave_the_text() {
    let page = "# Contact\n\n\
                If unhappy, contact [our support team]({{ site.email_support }}) and we'll help.\n\n\
                Read the [terms](../terms/index.md \"Terms\") and [privacy][p]; {% include footer.html %}done.\n\n\
                - A [broken link](not a url) in a list, {{ page.title | upcase }} gone\n\
                - An image ![logo](logo.png) and <span class=\"x\">inline HTML</span>\n\n\
                | Who | Where |\n| --- | --- |\n| [Support](mailto:help@example.com) | {{ site.city }} |\n\n\
                A lone { brace and a {{ without its end stay.\n\n\
                [p]: https://example.com/privacy\n";
    let document = load(page).unwrap();
    let text = document.normalised_text();
    assert_eq!(
        text,
        "Contact\n\n\
         If unhappy, contact our support team and we'll help.\n\n\
         Read the terms and privacy; done.\n\n\
         - A broken link in a list, gone\n\
         - An image logo and inline HTML\n\n\
         Who | Where\n\n\
         Support\n\n\
         A lone { brace and a {{ without its end stay."
    );
}
