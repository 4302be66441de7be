//! The in-memory twin of [`Directory`], for tests: a small file system that
//! remembers, for every file and directory, what has been made durable
//! (fsynced) and what has only been written, so that a simulated power cut
//! can lose or tear whatever `fsync` did not promise.
//!
//! The power-cut model: a file keeps everything synced; of what was written
//! after its last sync it keeps an arbitrary prefix, possibly followed by
//! zeros up to the size it had reached (its size was recorded but its data
//! never written). Of the changes to a directory's entries since its last
//! sync (files created, renamed and removed), each is kept or lost on its
//! own, whatever the order in which they were made.
//! Writes are not reordered within a file: a tear leaves a prefix, not a
//! patchwork of blocks.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fs::{Directory, FileHandle, FileStatus};

#[derive(Clone, Default)]
struct Node {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Entry {
    File(usize),
    Folder(usize),
}

#[derive(Clone, Default)]
struct Folder {
    entries: BTreeMap<String, Entry>,
    durable: BTreeMap<String, Entry>,
}

/// The files and folders; folder 0 is the root.
#[derive(Clone)]
struct Tree {
    nodes: Vec<Node>,
    folders: Vec<Folder>,
}

impl Tree {
    fn new() -> Self {
        Self {
            nodes: Vec::new(),
            folders: vec![Folder::default()],
        }
    }

    /// What a power cut now leaves behind.
    fn after_power_cut(&self, rng: &mut StdRng) -> Self {
        let mut tree = self.clone();
        for folder in &mut tree.folders {
            let names: Vec<String> = folder
                .entries
                .keys()
                .chain(folder.durable.keys())
                .cloned()
                .collect();
            for name in names {
                let synced = folder.durable.get(&name).copied();
                if folder.entries.get(&name).copied() != synced && rng.random_bool(0.5) {
                    match synced {
                        Some(entry) => folder.entries.insert(name, entry),
                        None => folder.entries.remove(&name),
                    };
                }
            }
            folder.durable = folder.entries.clone();
        }
        for node in &mut tree.nodes {
            if node.data != node.durable {
                let common = node
                    .data
                    .iter()
                    .zip(&node.durable)
                    .take_while(|(a, b)| a == b)
                    .count();
                let kept = rng.random_range(common..=node.data.len());
                let mut torn = node.data[..kept].to_vec();
                if kept < node.durable.len() {
                    torn.extend_from_slice(&node.durable[kept..]);
                } else if rng.random_bool(0.3) {
                    torn.resize(rng.random_range(kept..=node.data.len()), 0);
                }
                node.data = torn;
            }
            node.durable = node.data.clone();
        }
        tree
    }
}

struct Disk {
    tree: Tree,
    /// Mutating operations so far.
    ops: u64,
    /// A power cut to simulate just before operation `.0`.
    armed: Option<(u64, StdRng)>,
    /// What the armed power cut left behind.
    image: Option<Tree>,
    /// Writes to files created with a name ending in this fail, as on a full disk.
    failing: Option<String>,
    /// The name of every file created, in order.
    created: Vec<String>,
}

impl Disk {
    /// Counts a mutating operation, first taking the armed power cut's image if it is due.
    fn tick(&mut self) {
        self.ops += 1;
        if let Some((at, rng)) = &mut self.armed
            && *at == self.ops
        {
            self.image = Some(self.tree.after_power_cut(rng));
            self.armed = None;
        }
    }
}

/// A simulated disk, shared by every handle opened on it.
#[derive(Clone)]
pub(crate) struct MemoryDisk(Arc<Mutex<Disk>>);

impl MemoryDisk {
    /// An empty disk.
    pub(crate) fn new() -> Self {
        Self::from_tree(Tree::new())
    }

    fn from_tree(tree: Tree) -> Self {
        Self(Arc::new(Mutex::new(Disk {
            tree,
            ops: 0,
            armed: None,
            image: None,
            failing: None,
            created: Vec::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().expect("memory disk lock")
    }

    /// The root directory.
    pub(crate) fn root(&self) -> Arc<dyn Directory> {
        Arc::new(MemoryDir {
            disk: self.clone(),
            folder: 0,
        })
    }

    /// A new disk holding what a power cut now would leave behind.
    pub(crate) fn power_cut(&self, seed: u64) -> Self {
        let tree = self
            .lock()
            .tree
            .after_power_cut(&mut StdRng::seed_from_u64(seed));
        Self::from_tree(tree)
    }

    /// Simulates a power cut just before the `op`-th mutating operation
    /// from now; [`image`](Self::image) then returns what it left.
    pub(crate) fn arm_power_cut(&self, op: u64, seed: u64) {
        let mut disk = self.lock();
        disk.armed = Some((disk.ops + op, StdRng::seed_from_u64(seed)));
    }

    /// How many mutating operations the disk has seen.
    pub(crate) fn operations(&self) -> u64 {
        self.lock().ops
    }

    /// What the armed power cut left behind, once it happened.
    pub(crate) fn image(&self) -> Option<Self> {
        self.lock().image.clone().map(Self::from_tree)
    }

    /// Makes writes to files created from now on with a name ending in
    /// `suffix` fail as on a full disk (`None`: no failures).
    pub(crate) fn fail_writes_to(&self, suffix: Option<&str>) {
        self.lock().failing = suffix.map(str::to_owned);
    }

    /// The names of every file created so far, in order.
    pub(crate) fn created(&self) -> Vec<String> {
        self.lock().created.clone()
    }
}

struct MemoryDir {
    disk: MemoryDisk,
    folder: usize,
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
}

impl MemoryDir {
    fn file(&self, disk: &Disk, name: &str) -> io::Result<usize> {
        match disk.tree.folders[self.folder].entries.get(name) {
            Some(Entry::File(node)) => Ok(*node),
            Some(Entry::Folder(_)) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{name} is a directory"),
            )),
            None => Err(not_found(name)),
        }
    }

    fn handle(&self, node: usize, full: bool) -> Box<dyn FileHandle> {
        Box::new(MemoryFile {
            disk: self.disk.clone(),
            node,
            full,
        })
    }
}

impl Directory for MemoryDir {
    fn list(&self) -> io::Result<Vec<String>> {
        let disk = self.disk.lock();
        Ok(disk.tree.folders[self.folder]
            .entries
            .keys()
            .cloned()
            .collect())
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let disk = self.disk.lock();
        let node = self.file(&disk, name)?;
        Ok(disk.tree.nodes[node].data.clone())
    }

    fn read_head(&self, name: &str, len: usize) -> io::Result<Vec<u8>> {
        let disk = self.disk.lock();
        let node = self.file(&disk, name)?;
        let data = &disk.tree.nodes[node].data;
        Ok(data[..len.min(data.len())].to_vec())
    }

    fn size(&self, name: &str) -> io::Result<u64> {
        let disk = self.disk.lock();
        let node = self.file(&disk, name)?;
        Ok(disk.tree.nodes[node].data.len() as u64)
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn FileHandle>> {
        let mut disk = self.disk.lock();
        disk.tick();
        disk.created.push(name.to_owned());
        let full = disk
            .failing
            .as_ref()
            .is_some_and(|s| name.ends_with(s.as_str()));
        let node = match self.file(&disk, name) {
            Ok(node) => {
                disk.tree.nodes[node].data.clear();
                node
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                disk.tree.nodes.push(Node::default());
                let node = disk.tree.nodes.len() - 1;
                disk.tree.folders[self.folder]
                    .entries
                    .insert(name.to_owned(), Entry::File(node));
                node
            }
            Err(e) => return Err(e),
        };
        Ok(self.handle(node, full))
    }

    fn open_existing(&self, name: &str) -> io::Result<Box<dyn FileHandle>> {
        let disk = self.disk.lock();
        let node = self.file(&disk, name)?;
        Ok(self.handle(node, false))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.tick();
        let node = self.file(&disk, from)?;
        let entries = &mut disk.tree.folders[self.folder].entries;
        entries.remove(from);
        entries.insert(to.to_owned(), Entry::File(node));
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.tick();
        self.file(&disk, name)?;
        disk.tree.folders[self.folder].entries.remove(name);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.tick();
        let folder = &mut disk.tree.folders[self.folder];
        folder.durable = folder.entries.clone();
        Ok(())
    }

    fn subdir(&self, name: &str) -> io::Result<Arc<dyn Directory>> {
        let mut disk = self.disk.lock();
        let folder = match disk.tree.folders[self.folder].entries.get(name) {
            Some(Entry::Folder(folder)) => *folder,
            Some(Entry::File(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{name} is a file"),
                ));
            }
            None => {
                disk.tick();
                disk.tree.folders.push(Folder::default());
                let folder = disk.tree.folders.len() - 1;
                let parent = &mut disk.tree.folders[self.folder];
                parent
                    .entries
                    .insert(name.to_owned(), Entry::Folder(folder));
                parent.durable = parent.entries.clone();
                folder
            }
        };
        Ok(Arc::new(MemoryDir {
            disk: self.disk.clone(),
            folder,
        }))
    }
}

struct MemoryFile {
    disk: MemoryDisk,
    node: usize,
    /// Writes fail as on a full disk.
    full: bool,
}

impl FileHandle for MemoryFile {
    fn write_all_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.tick();
        if self.full {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on the simulated disk",
            ));
        }
        let start = usize::try_from(offset).map_err(|_| io::Error::other("offset too large"))?;
        let end = start + bytes.len();
        let data = &mut disk.tree.nodes[self.node].data;
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.tick();
        let node = &mut disk.tree.nodes[self.node];
        node.durable = node.data.clone();
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.tick();
        let len = usize::try_from(len).map_err(|_| io::Error::other("length too large"))?;
        disk.tree.nodes[self.node].data.resize(len, 0);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.disk.lock().tree.nodes[self.node].data.len() as u64)
    }

    fn status(&self) -> io::Result<FileStatus> {
        let disk = self.disk.lock();
        let named = disk.tree.folders.iter().any(|folder| {
            folder
                .entries
                .values()
                .any(|entry| matches!(entry, Entry::File(node) if *node == self.node))
        });
        Ok(FileStatus {
            removed: !named,
            len: disk.tree.nodes[self.node].data.len() as u64,
        })
    }
}
