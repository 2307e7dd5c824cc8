//! Citation markers: `[n]` in an answer names its n-th passage (1-based). One reader for every
//! place that cites, checks, strips or renumbers them, so they all agree on what a marker is.

/// One `[n]` marker in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub number: u32,
    /// Byte range of the whole marker, brackets included.
    pub start: usize,
    pub end: usize,
}

/// Every `[n]` marker of `text` (n one or more ASCII digits that fit a `u32`), in order. Anything
/// else in brackets (`[a]`, `[1, 2]`, `[^1]`) is not a marker.
pub fn find(text: &str) -> Vec<Marker> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find('[').map(|at| from + at) {
        let digits = text[open + 1..].bytes().take_while(u8::is_ascii_digit).count();
        let close = open + 1 + digits;
        from = open + 1;
        if digits > 0
            && text[close..].starts_with(']')
            && let Ok(number) = text[open + 1..close].parse::<u32>()
        {
            found.push(Marker { number, start: open, end: close + 1 });
            from = close + 1;
        }
    }
    found
}

/// The distinct marker numbers of `text`, in order of first use.
pub fn distinct(text: &str) -> Vec<u32> {
    let mut numbers: Vec<u32> = Vec::new();
    for marker in find(text) {
        if !numbers.contains(&marker.number) {
            numbers.push(marker.number);
        }
    }
    numbers
}

/// `text` with each marker replaced by what `replace` makes of its number (`None` leaves it).
pub fn replace(text: &str, mut replace: impl FnMut(u32) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for marker in find(text) {
        if let Some(replacement) = replace(marker.number) {
            out.push_str(&text[copied..marker.start]);
            out.push_str(&replacement);
            copied = marker.end;
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_bracketed_numbers_only() {
        let text = "Free [2]. See [a], [1, 2], [^3], [] and [99999999999]; then [1] and [2].";
        let numbers: Vec<u32> = find(text).iter().map(|m| m.number).collect();
        assert_eq!(numbers, [2, 1, 2]);
        assert_eq!(distinct(text), [2, 1]);
        let first = find(text)[0];
        assert_eq!(&text[first.start..first.end], "[2]");
    }

    #[test]
    fn replacing_touches_only_the_markers_chosen() {
        let text = "A [1], b [2], c [[3]].";
        assert_eq!(replace(text, |n| (n != 2).then(|| format!("[{}]", n * 10))), "A [10], b [2], c [[30]].");
        assert_eq!(replace(text, |_| Some(String::new())), "A , b , c [].");
    }
}
