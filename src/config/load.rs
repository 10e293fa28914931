//! Reading the configuration: the user's TOML deep-merged over the embedded default and
//! deserialized once into [`Config`]. A merged table has no positions, so an error is
//! located by its key path in the user's own text; a key that came from the default
//! cannot be wrong.

use std::ops::Range;
use std::path::Path;

use serde_path_to_error::Segment;
use toml::{Table, Value};
use toml_edit::{ImDocument, Item, TableLike};

use super::{Config, ConfigError, DEFAULT_TOML};

impl Config {
    /// The embedded default.
    pub fn default_config() -> Config {
        deserialize(default_table(), DEFAULT_TOML, "<embedded default>")
            .expect("the embedded default configuration is valid")
    }

    /// Loads `path` over the default, or the default alone when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Ok(Config::default_config()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!(
                        "{}: cannot read configuration: {e}",
                        path.display()
                    ))
                })?;
                Config::parse(&text, &path.display().to_string())
            }
        }
    }

    /// Parses `text` (named `origin` in messages) over the default.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let user: Table = text.parse().map_err(|e: toml::de::Error| {
            let location = e
                .span()
                .map(|s| position(text, s.start))
                .unwrap_or_default();
            ConfigError(format!("{origin}: {location}{}", e.message().trim()))
        })?;
        let cfg = deserialize(merge(default_table(), user), text, origin)?;
        cfg.validate(origin, text)?;
        Ok(cfg)
    }
}

/// The embedded default as a table.
fn default_table() -> Table {
    DEFAULT_TOML
        .parse()
        .expect("the embedded default configuration is TOML")
}

/// `over` deep-merged over `base`: tables merge key by key, any other value (arrays
/// included) replaces. The keys of `over` come first, in its order, so that of several
/// mistakes in a file the first one is reported.
fn merge(mut base: Table, over: Table) -> Table {
    let mut merged = Table::new();
    for (key, value) in over {
        let value = match (base.remove(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => Value::Table(merge(b, o)),
            (_, value) => value,
        };
        merged.insert(key, value);
    }
    merged.extend(base);
    merged
}

/// Deserializes the merged table into a `Config`; an error names the key path, and the
/// line and column where `text` (the user's file) sets that key.
fn deserialize(merged: Table, text: &str, origin: &str) -> Result<Config, ConfigError> {
    // Through toml_edit's deserializer, as a file is read: its messages are those of a
    // file ("wanted string or table"; a date is not taken for a string).
    let doc =
        toml_edit::ser::to_document(&merged).map_err(|e| ConfigError(format!("{origin}: {e}")))?;
    let de = toml_edit::de::Deserializer::from(doc);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let location = locate(text, e.path())
            .map(|s| position(text, s.start))
            .unwrap_or_default();
        let path = e.path().to_string();
        let key = if path.is_empty() || path == "." {
            String::new()
        } else {
            format!("key `{path}`: ")
        };
        let message = e.inner().message().trim();
        ConfigError(format!("{origin}: {location}{key}{message}"))
    })
}

/// "line L, column C: " for a byte offset in `text`.
fn position(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("line {line}, column {col}: ")
}

/// The line (1-based) where `text` sets a dotted key such as `store.path`, if it does.
pub(super) fn key_line(text: &str, dotted: &str) -> Option<usize> {
    let doc = ImDocument::parse(text).ok()?;
    let steps: Vec<Step> = dotted.split('.').map(Step::Key).collect();
    let found = find(doc.as_table(), &steps)?;
    let offset = found.key.or(found.value)?.start;
    Some(text[..offset.min(text.len())].matches('\n').count() + 1)
}

/// Where the error at `path` lies in `text`: an unknown key at the key itself, anything
/// else at the value the user wrote.
fn locate(text: &str, path: &serde_path_to_error::Path) -> Option<Range<usize>> {
    let doc = ImDocument::parse(text).ok()?;
    let mut steps = Vec::new();
    for segment in path {
        match segment {
            Segment::Map { key } => steps.push(Step::Key(key)),
            Segment::Seq { index } => steps.push(Step::Index(*index)),
            Segment::Enum { .. } | Segment::Unknown => break,
        }
    }
    let found = find(doc.as_table(), &steps)?;
    if known_key(&default_table(), &steps) {
        found.value.or(found.key)
    } else {
        found.key.or(found.value)
    }
}

/// Whether the key `steps` ends with is one the model knows: the embedded default
/// sets every key there is, so a key missing from a table there is an unknown key.
fn known_key(default: &Table, steps: &[Step]) -> bool {
    let mut table = default;
    for (i, step) in steps.iter().enumerate() {
        let Step::Key(key) = step else { return true };
        match table.get(*key) {
            None => return false,
            Some(Value::Table(t)) if i + 1 < steps.len() => table = t,
            Some(_) => return true,
        }
    }
    true
}

/// One step of a key path: a key in a table, or an index in an array.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// What `find` found: the span of the last key on the path and of the value there.
struct Found {
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
}

/// A place in a parsed document: an item of a table, an element of an array, or a table
/// of an array of tables.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Value(&'a toml_edit::Value),
    Table(&'a toml_edit::Table),
}

impl<'a> Node<'a> {
    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
            Node::Table(t) => t.span(),
        }
    }

    fn table(self) -> Option<&'a dyn TableLike> {
        match self {
            Node::Item(i) => i.as_table_like(),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
            Node::Table(t) => Some(t),
        }
    }

    fn element(self, index: usize) -> Option<Node<'a>> {
        match self {
            Node::Item(Item::ArrayOfTables(a)) => a.get(index).map(Node::Table),
            Node::Item(Item::Value(v)) | Node::Value(v) => {
                v.as_array().and_then(|a| a.get(index)).map(Node::Value)
            }
            _ => None,
        }
    }
}

/// The key and value at `steps` in `root`, when the document sets them.
fn find(root: &toml_edit::Table, steps: &[Step]) -> Option<Found> {
    let mut node = Node::Table(root);
    let mut key = None;
    for step in steps {
        node = match *step {
            Step::Key(name) => {
                let (k, item) = node.table()?.get_key_value(name)?;
                key = k.span();
                Node::Item(item)
            }
            Step::Index(index) => node.element(index)?,
        };
    }
    Some(Found {
        key,
        value: node.span(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;
    use crate::config::HumanDuration;

    fn table(text: &str) -> Table {
        text.parse().unwrap()
    }

    fn err(text: &str) -> String {
        Config::parse(text, "test.toml").unwrap_err().0
    }

    /// Every dotted key of `t`, tables included.
    fn keys(t: &Table, prefix: &str, out: &mut BTreeSet<String>) {
        for (k, v) in t {
            let key = format!("{prefix}{k}");
            if let Value::Table(inner) = v {
                keys(inner, &format!("{key}."), out);
            }
            out.insert(key);
        }
    }

    #[test]
    fn each_key_is_defined_once() {
        // The model and the documented default have the same keys: what the default sets
        // is what `Config` serializes (and `Config` has no serde defaults of its own).
        let cfg = Config::default_config();
        let (mut documented, mut modelled) = (BTreeSet::new(), BTreeSet::new());
        keys(&default_table(), "", &mut documented);
        keys(&table(&cfg.to_toml()), "", &mut modelled);
        assert_eq!(documented, modelled);
        assert!(documented.contains("auth.throttle.block_after"));
        // And the effective configuration reads back as itself.
        assert_eq!(Config::parse(&cfg.to_toml(), "x").unwrap(), cfg);
    }

    #[test]
    fn one_nested_key_keeps_its_siblings() {
        let mut expected = Config::default_config();
        expected.auth.throttle.delay = HumanDuration(Duration::from_secs(2));
        for text in [
            "[auth.throttle]\ndelay = \"2s\"\n",
            "auth.throttle.delay = \"2s\"\n",
            "auth = { throttle = { delay = \"2s\" } }\n",
            "[auth]\n[auth.throttle]\ndelay = \"2s\"\n",
        ] {
            assert_eq!(Config::parse(text, "x").unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn tables_merge_and_other_values_replace() {
        let base = table("a = [1, 2]\ns = \"x\"\n[t]\nx = 1\ny = [1]\n[t.u]\nz = 1\nw = 2\n");
        let over = table("a = [3]\n[t]\ny = [2]\n[t.u]\nw = 3\n");
        let want = table("a = [3]\ns = \"x\"\n[t]\nx = 1\ny = [2]\n[t.u]\nz = 1\nw = 3\n");
        assert_eq!(merge(base.clone(), over), want);
        // A table over a non-table replaces it, and the other way round.
        assert_eq!(merge(base.clone(), table("s = { k = 1 }")), {
            let mut w = base.clone();
            w.insert("s".into(), Value::Table(table("k = 1")));
            w
        });
        assert_eq!(merge(base.clone(), table("t = 5"))["t"], Value::Integer(5));
        // Through `Config`: the user's array is the whole array.
        let cfg = Config::parse("[dns]\nnameservers = [\"127.0.0.1\"]\n", "x").unwrap();
        assert_eq!(cfg.dns.nameservers.len(), 1);
    }

    #[test]
    fn errors_are_located_in_the_users_file() {
        assert_eq!(
            err("[auth.throttle]\ndelay = \"2s\"\nbogus = 1\n"),
            "test.toml: line 3, column 1: key `auth.throttle.bogus`: unknown field `bogus`, \
             expected one of `window`, `free_failures`, `delay`, `max_delay`, `block_after`, \
             `user_budget`, `known_address_ttl`"
        );
        assert_eq!(
            err("auth.throttle.nope = 1\n"),
            "test.toml: line 1, column 15: key `auth.throttle.nope`: unknown field `nope`, \
             expected one of `window`, `free_failures`, `delay`, `max_delay`, `block_after`, \
             `user_budget`, `known_address_ttl`"
        );
        assert!(err("[nope]\nx = 1\n")
            .starts_with("test.toml: line 1, column 2: key `nope`: unknown field `nope`"),);
        assert_eq!(
            err("[store]\n   busy_timeout   =   5\n"),
            "test.toml: line 2, column 23: key `store.busy_timeout`: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            err("store = 5\n"),
            "test.toml: line 1, column 9: key `store`: invalid type: integer `5`, expected struct StoreConfig"
        );
        // An array element is pointed at.
        assert!(
            err("[dns]\nnameservers = [\n  \"127.0.0.1\",\n  \"x\",\n]\n").starts_with(
                "test.toml: line 4, column 3: key `dns.nameservers[1]`: invalid nameserver \"x\""
            )
        );
        // Of two mistakes, the first in the file.
        assert!(
            err("[store]\nbusy_timeout = \"fast\"\n[auth]\nlisten = \"bad\"\n")
                .starts_with("test.toml: line 2, column 16: key `store.busy_timeout`")
        );
        assert!(
            err("[auth]\nlisten = \"bad\"\n[store]\nbusy_timeout = \"fast\"\n")
                .starts_with("test.toml: line 2, column 10: key `auth.listen`")
        );
        // A date is no string.
        assert!(err("[inbound]\nauthserv_id = 1979-05-27\n")
            .starts_with("test.toml: line 2, column 15: key `inbound.authserv_id`: invalid type"));
        // Syntax.
        assert_eq!(
            err("x = 1\nx = 2\n"),
            "test.toml: line 2, column 1: duplicate key `x` in document root"
        );
    }

    #[test]
    fn semantic_errors_name_the_line_the_user_wrote() {
        assert_eq!(
            err("password_hash.iterations = 0\n"),
            "test.toml: line 1: key `password_hash.iterations`: must be at least 1"
        );
        assert_eq!(
            err("[ auth . throttle ]\nwindow = \"0s\"\n"),
            "test.toml: line 2: key `auth.throttle.window`: must be longer than 0s"
        );
        // The offending key came from the default: no line to name.
        assert_eq!(
            err("[auth.throttle]\nmax_delay = \"100ms\"\n"),
            "test.toml: key `auth.throttle.delay`: must not exceed auth.throttle.max_delay"
        );
    }
}
