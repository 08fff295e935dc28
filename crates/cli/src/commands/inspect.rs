//! `cairn inspect`: the fragment tree of a module or component.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::Context;
use cairn_split::binary::{custom_sections, CustomSection};
use cairn_split::skeleton::{Piece, Skeleton};
use cairn_split::{BlobId, BlobKind, Split};
use clap::Args;
use serde::Serialize;

use super::{read_input, split_file};
use crate::output;

/// Show how a module or component splits.
///
/// Prints the tree of skeletons and module fragments, with kinds, sizes and digests, and the
/// custom sections inside each module.
#[derive(Args)]
#[command(after_help = "Examples:\n  cairn inspect app.wasm\n  cairn inspect app.wasm --json")]
pub struct InspectCommand {
    /// The core module or component to inspect.
    file: PathBuf,
    /// Print the tree as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Node {
    #[serde(rename_all = "camelCase")]
    Module {
        size: u64,
        digest: BlobId,
        /// True when the same module appeared earlier in the tree (stored once).
        repeated: bool,
        custom_sections: Vec<CustomSectionJson>,
    },
    #[serde(rename_all = "camelCase")]
    Component {
        size: u64,
        skeleton_digest: BlobId,
        skeleton_size: u64,
        repeated: bool,
        children: Vec<Node>,
    },
}

#[derive(Serialize)]
struct CustomSectionJson {
    name: String,
    size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspection {
    path: String,
    size: u64,
    tree_digest: cairn_split::TreeDigest,
    blobs: usize,
    stored_size: u64,
    root: Node,
}

impl InspectCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let bytes = read_input(&self.file)?;
        let split = split_file(&self.file, &bytes)?;
        let mut seen = HashSet::new();
        let root = node(&split, &split.manifest().root().digest, &mut seen)?;
        let inspection = Inspection {
            path: self.file.display().to_string(),
            size: bytes.len() as u64,
            tree_digest: split.tree_digest(),
            blobs: split.blobs().len(),
            stored_size: split.blobs().iter().map(|b| b.bytes.len() as u64).sum(),
            root,
        };
        if self.json {
            return output::print_json(&inspection);
        }
        crate::outln!("{}: {}", inspection.path, output::size(inspection.size));
        crate::outln!("tree: {}", inspection.tree_digest);
        crate::outln!(
            "stored split: {} in {} distinct blobs",
            output::size(inspection.stored_size),
            inspection.blobs
        );
        print_node(&inspection.root, "", "")?;
        Ok(())
    }
}

fn node(split: &Split<'_>, digest: &BlobId, seen: &mut HashSet<BlobId>) -> anyhow::Result<Node> {
    let blob = split
        .blob(digest)
        .with_context(|| format!("the split lacks blob {digest}"))?;
    let repeated = !seen.insert(*digest);
    match blob.kind {
        BlobKind::Module => {
            let sections = custom_sections(&blob.bytes)?;
            Ok(Node::Module {
                size: blob.bytes.len() as u64,
                digest: *digest,
                repeated,
                custom_sections: sections
                    .into_iter()
                    .map(|CustomSection { name, size }| CustomSectionJson { name, size })
                    .collect(),
            })
        }
        BlobKind::Skeleton => {
            let skeleton = Skeleton::decode(&blob.bytes)?;
            let mut children = Vec::new();
            for piece in skeleton.pieces() {
                match piece {
                    Piece::Literal(_) => {}
                    Piece::Module { digest, .. } | Piece::Component { digest, .. } => {
                        children.push(node(split, digest, seen)?);
                    }
                }
            }
            Ok(Node::Component {
                size: skeleton.joined_size(),
                skeleton_digest: *digest,
                skeleton_size: blob.bytes.len() as u64,
                repeated,
                children,
            })
        }
    }
}

fn print_node(node: &Node, first_prefix: &str, rest_prefix: &str) -> std::io::Result<()> {
    match node {
        Node::Module {
            size,
            digest,
            repeated,
            custom_sections,
        } => {
            let again = if *repeated { "  (repeated)" } else { "" };
            crate::outln!(
                "{first_prefix}module {}  {digest}{again}",
                output::size(*size)
            );
            if !custom_sections.is_empty() {
                let list: Vec<String> = custom_sections
                    .iter()
                    .map(|s| format!("{} {}", s.name, output::size(s.size)))
                    .collect();
                crate::outln!("{rest_prefix}    custom sections: {}", list.join(", "));
            }
        }
        Node::Component {
            size,
            skeleton_digest,
            skeleton_size,
            repeated,
            children,
        } => {
            let again = if *repeated { "  (repeated)" } else { "" };
            crate::outln!(
                "{first_prefix}component {}  skeleton {skeleton_digest}, {}{again}",
                output::size(*size),
                output::size(*skeleton_size)
            );
            for (i, child) in children.iter().enumerate() {
                let last = i + 1 == children.len();
                let (branch, continuation) = if last {
                    ("└── ", "    ")
                } else {
                    ("├── ", "│   ")
                };
                print_node(
                    child,
                    &format!("{rest_prefix}{branch}"),
                    &format!("{rest_prefix}{continuation}"),
                )?;
            }
        }
    }
    Ok(())
}
