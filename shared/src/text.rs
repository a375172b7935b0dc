//! Small text helpers shared by every layer.

/// Clips `s` to at most `max` bytes, on a character boundary, ending in `…` when clipped.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
