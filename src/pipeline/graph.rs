//! The routing graph `auditrail check` prints: which tags each source makes,
//! which filters they pass and retag through, and which outputs they reach.
//! Dynamic tags (`${...}` templates) are known by their literal prefix, so an
//! output is only reported unreachable when no tag could possibly match it.

use std::fmt::{self, Write as _};

use super::tag_pattern::TagPattern;
use crate::config::Config;

/// A tag some source or filter produces.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TagShape {
    /// The tag, or its template.
    text: String,
    /// The literal text before the first `$`; equal to `text` when static.
    prefix: String,
    source: usize,
    /// Filters that retagged it on the way.
    via: Vec<usize>,
}

impl TagShape {
    fn new(text: &str, source: usize, via: Vec<usize>) -> Self {
        let prefix = text.find('$').map_or(text, |n| &text[..n]).to_owned();
        Self {
            text: text.to_owned(),
            prefix,
            source,
            via,
        }
    }

    fn is_static(&self) -> bool {
        self.prefix.len() == self.text.len()
    }

    fn may_match(&self, pattern: &TagPattern) -> bool {
        if self.is_static() {
            return pattern.matches(&self.text);
        }
        pattern
            .literal_prefixes()
            .iter()
            .any(|p| p.starts_with(&self.prefix) || self.prefix.starts_with(p.as_str()))
    }
}

/// Who feeds whom.
pub struct RoutingGraph {
    sources: Vec<(String, &'static str, String)>,
    filters: Vec<(String, &'static str, String, Vec<String>)>,
    outputs: Vec<(String, &'static str, String)>,
    shapes: Vec<TagShape>,
    /// For each filter, the shapes that reach it.
    filter_inputs: Vec<Vec<usize>>,
    /// For each output, the shapes that reach it.
    output_inputs: Vec<Vec<usize>>,
}

/// Retag chains longer than this are not followed (the router's hop limit).
const MAX_DEPTH: usize = super::router::MAX_HOPS as usize;

impl RoutingGraph {
    pub fn build(config: &Config) -> Self {
        let mut shapes: Vec<TagShape> = config
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| TagShape::new(s.config.tag(), i, Vec::new()))
            .collect();
        let mut filter_inputs = vec![Vec::new(); config.filters.len()];
        let mut next = 0;
        while next < shapes.len() {
            let shape = shapes[next].clone();
            for (index, filter) in config.filters.iter().enumerate() {
                if !shape.may_match(&filter.pattern) {
                    continue;
                }
                filter_inputs[index].push(next);
                let Some(produced) = filter.config.produced_tags() else {
                    continue;
                };
                if shape.via.len() >= MAX_DEPTH {
                    continue;
                }
                for template in produced {
                    let mut via = shape.via.clone();
                    via.push(index);
                    let new = TagShape::new(&template, shape.source, via);
                    let known = shapes
                        .iter()
                        .any(|s| s.text == new.text && s.source == new.source);
                    if !known {
                        shapes.push(new);
                    }
                }
            }
            next += 1;
        }
        let output_inputs = config
            .outputs
            .iter()
            .map(|o| {
                (0..shapes.len())
                    .filter(|&i| shapes[i].may_match(&o.pattern))
                    .collect()
            })
            .collect();
        Self {
            sources: config
                .sources
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        s.config.type_name(),
                        s.config.tag().to_owned(),
                    )
                })
                .collect(),
            filters: config
                .filters
                .iter()
                .map(|f| {
                    (
                        f.name.clone(),
                        f.config.type_name(),
                        f.pattern.to_string(),
                        f.config.produced_tags().unwrap_or_default(),
                    )
                })
                .collect(),
            outputs: config
                .outputs
                .iter()
                .map(|o| (o.name.clone(), o.config.type_name(), o.pattern.to_string()))
                .collect(),
            shapes,
            filter_inputs,
            output_inputs,
        }
    }

    /// The tag shapes that reach output `index`.
    pub fn output_feeds(&self, index: usize) -> &[usize] {
        &self.output_inputs[index]
    }

    /// Every tag produced, for messages.
    pub fn describe_tags(&self) -> String {
        let mut tags: Vec<String> = self
            .shapes
            .iter()
            .map(|s| format!("`{}`", s.text))
            .collect();
        tags.sort();
        tags.dedup();
        tags.join(", ")
    }

    fn describe_feed(&self, shape: usize) -> String {
        let s = &self.shapes[shape];
        let mut text = format!("{} `{}`", self.sources[s.source].0, s.text);
        if !s.via.is_empty() {
            let via: Vec<&str> = s.via.iter().map(|&f| self.filters[f].0.as_str()).collect();
            let _ = write!(text, " (retagged by {})", via.join(" -> "));
        }
        text
    }
}

impl fmt::Display for RoutingGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sources:")?;
        for (name, kind, tag) in &self.sources {
            writeln!(f, "  {name} ({kind}) -> tag `{tag}`")?;
        }
        if !self.filters.is_empty() {
            writeln!(f, "filters, in order:")?;
        }
        for (index, (name, kind, pattern, produced)) in self.filters.iter().enumerate() {
            writeln!(f, "  {name} ({kind}) match `{pattern}`")?;
            let feeds = &self.filter_inputs[index];
            if feeds.is_empty() {
                writeln!(f, "    <- nothing reaches this filter")?;
            }
            for &shape in feeds {
                writeln!(f, "    <- {}", self.describe_feed(shape))?;
            }
            for tag in produced {
                writeln!(f, "    retags to `{tag}`")?;
            }
        }
        writeln!(f, "outputs:")?;
        for (index, (name, kind, pattern)) in self.outputs.iter().enumerate() {
            writeln!(f, "  {name} ({kind}) match `{pattern}`")?;
            let feeds = &self.output_inputs[index];
            if feeds.is_empty() {
                writeln!(f, "    <- nothing reaches this output")?;
            }
            for &shape in feeds {
                writeln!(f, "    <- {}", self.describe_feed(shape))?;
            }
        }
        Ok(())
    }
}
