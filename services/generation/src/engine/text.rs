//! A request's answer text as it is decoded: new text per token without re-decoding the whole
//! answer, and stop sequences held back until they either match or cannot.

/// Text for new tokens only: decodes a short window (the tokens since the last emitted text, with
/// the tokens before them as context) instead of the whole answer at every step. The context
/// matters: a byte-level BPE token may be half a character, and some decoders drop a leading space
/// at the start of what they decode; comparing with the context's own text cancels both.
#[derive(Debug, Default)]
pub(crate) struct Detokenizer {
    /// Start of the context tokens.
    context_start: usize,
    /// Start of the tokens whose text is not yet returned.
    unread_start: usize,
}

impl Detokenizer {
    pub(crate) fn next<E>(
        &mut self,
        tokens: &[u32],
        decode: impl Fn(&[u32]) -> Result<String, E>,
    ) -> Result<String, E> {
        let context = decode(&tokens[self.context_start..self.unread_start])?;
        let window = decode(&tokens[self.context_start..])?;
        if window.len() <= context.len() || window.ends_with('\u{FFFD}') || !window.starts_with(&context) {
            return Ok(String::new()); // mid-character: wait for the next token
        }
        self.context_start = self.unread_start;
        self.unread_start = tokens.len();
        Ok(window[context.len()..].to_owned())
    }
}

/// Turns new answer text into deltas: holds back any tail that could be the start of a stop
/// sequence, and cuts the answer at a stop sequence.
#[derive(Debug)]
pub(crate) struct TextStream {
    stops: Vec<String>,
    pub(crate) emitted: String,
    pending: String,
}

impl TextStream {
    pub(crate) fn new(stops: &[String]) -> Self {
        Self { stops: stops.to_vec(), emitted: String::new(), pending: String::new() }
    }

    /// Given the answer's new text, the text safe to emit, and whether a stop matched.
    pub(crate) fn push(&mut self, new_text: &str) -> (String, bool) {
        self.pending.push_str(new_text);
        let whole = format!("{}{}", self.emitted, self.pending);
        if let Some(cut) = self.stops.iter().filter_map(|stop| whole.find(stop.as_str())).min() {
            let delta = whole[self.emitted.len().min(cut)..cut].to_owned();
            self.emitted = whole[..cut].to_owned();
            self.pending.clear();
            return (delta, true);
        }
        let hold = self.stops.iter().map(|stop| longest_suffix_prefix(&whole, stop)).max().unwrap_or(0);
        let safe_end = floor_char_boundary(&whole, whole.len() - hold).max(self.emitted.len());
        let delta = whole[self.emitted.len()..safe_end].to_owned();
        self.emitted.push_str(&delta);
        self.pending = whole[safe_end..].to_owned();
        (delta, false)
    }

    /// Text held back for a stop sequence that never came.
    pub(crate) fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.pending);
        self.emitted.push_str(&rest);
        Some(rest)
    }
}

/// Length of the longest proper prefix of `stop` that `text` ends with.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    (1..stop.len()).rev().find(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n])).unwrap_or(0)
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::{Detokenizer, TextStream};

    fn run(stops: &[&str], deltas_in: &[&str]) -> (Vec<String>, bool, String) {
        let mut stream = TextStream::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let mut deltas = Vec::new();
        for step in deltas_in {
            let (delta, stopped) = stream.push(step);
            deltas.push(delta);
            if stopped {
                return (deltas, true, stream.emitted);
            }
        }
        if let Some(rest) = stream.finish() {
            deltas.push(rest);
        }
        (deltas, false, stream.emitted)
    }

    #[test]
    fn a_stop_sequence_cuts_the_answer_and_is_never_emitted() {
        let (deltas, stopped, answer) = run(&["\nQ:"], &["Yes", ".\n", "Q", ":", " more"]);
        assert!(stopped);
        assert_eq!(answer, "Yes.");
        assert_eq!(deltas.concat(), "Yes.");
    }

    #[test]
    fn held_back_text_is_released_when_no_stop_follows() {
        let (deltas, stopped, answer) = run(&["END"], &["it is E", "N", "OUGH"]);
        assert!(!stopped);
        assert_eq!(answer, "it is ENOUGH");
        assert_eq!(deltas.concat(), "it is ENOUGH");
        assert_eq!(deltas[0], "it is ", "the possible start of END waits");
    }

    /// A byte-level decoder: each token is one byte of UTF-8; like some real decoders it drops a
    /// leading space of what it decodes.
    fn decode(tokens: &[u32]) -> Result<String, ()> {
        let bytes: Vec<u8> = tokens.iter().map(|&t| t as u8).collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(text.strip_prefix(' ').map(str::to_owned).unwrap_or(text))
    }

    #[test]
    fn new_text_comes_whole_across_split_characters_and_leading_spaces() {
        let answer = "Oui, café ok";
        let tokens: Vec<u32> = answer.bytes().map(u32::from).collect();
        let mut detokenizer = Detokenizer::default();
        let mut pieces = Vec::new();
        for n in 1..=tokens.len() {
            pieces.push(detokenizer.next(&tokens[..n], decode).unwrap());
        }
        assert_eq!(pieces.concat(), answer);
        let e_acute = answer.find('é').unwrap();
        assert_eq!(pieces[e_acute], "", "half of é waits for its second byte");
        assert_eq!(pieces[e_acute + 1], "é");
        assert_eq!(pieces[answer.rfind(' ').unwrap()], " ", "a space after context is kept");
    }
}
