//! Message formatting as plain text, for everything that shows or indexes a
//! message without rendering it: notifications, courier-cli output and the
//! local search index.
//!
//! Messages are written in chat-style Markdown (bold, italic,
//! strikethrough, `code`, fenced code blocks, quotes, lists, auto-links and
//! Discord-style `||spoilers||`), the set the UI renders
//! (`ui/src/utils/markdown.ts`). [`plain_text`] keeps the words and drops the
//! markup, one line per block, with each spoiler replaced by
//! [`SPOILER_MASK`]; [`search_text`] keeps the spoiler's words so search can
//! find them. What the UI shows literally (HTML, headings, rules, images,
//! `[text](url)` links, tables, entities) stays literal here too.

use pulldown_cmark::{CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

/// What replaces a spoiler's text in previews, notifications and the CLI.
pub const SPOILER_MASK: &str = "▒▒▒";

/// The words of a message without its markup, one line per block; each
/// spoiler becomes [`SPOILER_MASK`].
pub fn plain_text(src: &str) -> String {
    render(src, Spoilers::Mask)
}

/// Like [`plain_text`], but spoilers keep their words: the text the search
/// index holds, so a search matches the words and never the markup.
pub fn search_text(src: &str) -> String {
    render(src, Spoilers::Keep)
}

#[derive(Clone, Copy, PartialEq)]
enum Spoilers {
    Mask,
    Keep,
}

/// Inline content of the current block: text where `||` may open or close
/// a spoiler, and code spans where it may not.
enum Piece {
    Text(String),
    Code(String),
}

struct Out<'a> {
    src: &'a str,
    spoilers: Spoilers,
    text: String,
    pieces: Vec<Piece>,
}

impl Out<'_> {
    fn text(&mut self, s: &str) {
        match self.pieces.last_mut() {
            Some(Piece::Text(t)) => t.push_str(s),
            _ => self.pieces.push(Piece::Text(s.to_owned())),
        }
    }

    /// Writes the pending inline content, spoilers resolved, and ends the line.
    fn end_line(&mut self) {
        let pieces = std::mem::take(&mut self.pieces);
        // `||` pairs up in order; an odd last one is literal text.
        let total: usize = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.matches("||").count(),
                Piece::Code(_) => 0,
            })
            .sum();
        let usable = total - total % 2;
        let (mut seen, mut hidden) = (0, false);
        for p in &pieces {
            match p {
                Piece::Code(c) => {
                    if !hidden || self.spoilers == Spoilers::Keep {
                        self.text.push_str(c);
                    }
                }
                Piece::Text(t) => {
                    let mut rest = t.as_str();
                    while let Some(i) = rest.find("||").filter(|_| seen < usable) {
                        self.push_visible(&rest[..i], hidden);
                        seen += 1;
                        hidden = !hidden;
                        if hidden && self.spoilers == Spoilers::Mask {
                            self.text.push_str(SPOILER_MASK);
                        }
                        rest = &rest[i + 2..];
                    }
                    self.push_visible(rest, hidden);
                }
            }
        }
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
    }

    fn push_visible(&mut self, s: &str, hidden: bool) {
        if !hidden || self.spoilers == Spoilers::Keep {
            self.text.push_str(s);
        }
    }
}

/// Tags the UI does not format: shown as the source typed.
fn literal(tag: &Tag) -> bool {
    match tag {
        Tag::Heading { .. }
        | Tag::HtmlBlock
        | Tag::Image { .. }
        | Tag::Table(_)
        | Tag::CodeBlock(CodeBlockKind::Indented) => true,
        Tag::Link { link_type, .. } => !matches!(link_type, LinkType::Autolink | LinkType::Email),
        _ => false,
    }
}

fn render(src: &str, spoilers: Spoilers) -> String {
    let mut out = Out { src, spoilers, text: String::new(), pieces: Vec::new() };
    let mut events = Parser::new_ext(src, Options::ENABLE_STRIKETHROUGH).into_offset_iter();
    while let Some((event, range)) = events.next() {
        match event {
            Event::Start(tag) if literal(&tag) => {
                // Skip to the matching end; its source is the text.
                let mut depth = 1;
                for (e, _) in events.by_ref() {
                    match e {
                        Event::Start(_) => depth += 1,
                        Event::End(_) => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                }
                let typed = out.src[range].trim_end().to_owned();
                out.text(&typed);
                if !matches!(tag, Tag::Link { .. } | Tag::Image { .. }) {
                    out.end_line();
                }
            }
            Event::Text(t) => {
                // Entities are not decoded by the UI, so neither here.
                let typed = &out.src[range];
                let s = if typed.starts_with('&') && typed.ends_with(';') { typed } else { &t };
                let s = s.to_owned();
                out.text(&s);
            }
            Event::Code(c) => out.pieces.push(Piece::Code(c.into_string())),
            Event::Html(h) | Event::InlineHtml(h) => out.text(&h),
            Event::SoftBreak | Event::HardBreak => out.text("\n"),
            Event::Rule => {
                out.text(out.src[range].trim_end());
                out.end_line();
            }
            Event::End(TagEnd::Paragraph | TagEnd::Item | TagEnd::CodeBlock | TagEnd::BlockQuote(_)) => {
                out.end_line()
            }
            Event::Start(Tag::Item) => out.end_line(),
            _ => {}
        }
    }
    out.end_line();
    out.text.trim_end_matches('\n').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_markup_and_keeps_the_words() {
        assert_eq!(plain_text("**bold** _it_ *em* ~~gone~~ `code`"), "bold it em gone code");
        assert_eq!(plain_text("> quoted **x**\n\n- one\n- two\n\n3. three"), "quoted x\none\ntwo\nthree");
        assert_eq!(plain_text("```rust\nfn main() {}\n```\nafter"), "fn main() {}\nafter");
        assert_eq!(plain_text("line one\nline two"), "line one\nline two");
    }

    #[test]
    fn masks_spoilers_in_plain_text_and_keeps_them_for_search() {
        assert_eq!(plain_text("the end: ||she **wins**|| ok"), format!("the end: {SPOILER_MASK} ok"));
        assert_eq!(search_text("the end: ||she **wins**|| ok"), "the end: she wins ok");
        assert_eq!(plain_text("a ||b|| c ||d"), format!("a {SPOILER_MASK} c ||d"), "an unpaired || is text");
        assert_eq!(plain_text("`a||b` c"), "a||b c", "no spoiler from code");
    }

    #[test]
    fn keeps_what_the_ui_shows_literally() {
        for s in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)> hi",
            "# not a heading",
            "[y](https://z.io)",
            "![i](https://x.io/i.png)",
            "a &amp; b",
        ] {
            assert_eq!(plain_text(s), s);
        }
        assert_eq!(plain_text("see <https://x.io> or https://y.io"), "see https://x.io or https://y.io");
    }

    #[test]
    fn plain_text_of_plain_text_is_unchanged() {
        for s in ["hello", "你好，世界", "@bob see this", "2 * 3 = 6", "a_b_c"] {
            assert_eq!(plain_text(s), s);
        }
    }
}
