//! The registry's disk: content-addressed blobs shared by every repository,
//! and per-repository links, tags and referrers.
//!
//! ```text
//! ROOT/blobs/<alg>/<hex>                           the content, once, whoever pushed it
//! ROOT/repositories/<name>/_blobs/<alg>/<hex>      empty: this repository has that blob
//! ROOT/repositories/<name>/_manifests/<alg>/<hex>  this repository has that manifest; holds its media type
//! ROOT/repositories/<name>/_tags/<tag>             the digest the tag points to
//! ROOT/repositories/<name>/_referrers/<alg>/<hex>/<alg>/<hex>
//!                                                  empty: the second manifest's subject is the first
//! ROOT/uploads/<uuid>/                             upload sessions (see uploads.rs)
//! ROOT/tmp/                                        files being written
//! ROOT/registry.lock                               flock(2)ed: shared by servers, exclusive by gc
//! ```
//!
//! Why links: a blob is stored once however many repositories hold it (the
//! same base layer under a hundred names costs its size once), yet each
//! repository only answers for what was pushed *to it*: deleting a blob from
//! one repository removes that repository's link, and the content stays for
//! the others until `gc` finds nothing refers to it. Repository names start
//! with a letter or digit, so `_blobs` and friends never collide with a
//! nested repository's directory.
//!
//! Every write is atomic: content goes to a file in `ROOT/tmp`, is fsynced,
//! renamed to its final name (rename(2) within one filesystem is atomic) and
//! the directory fsynced. A crash leaves a stray file in `tmp/`, never a
//! truncated blob under a digest's name, nor a tag pointing to half a
//! manifest. Blob names are trusted: nothing is renamed into `blobs/` before
//! its bytes hashed to the name.
//!
//! The same scheme as the distribution registry's filesystem driver
//! (`docker/registry/v2/blobs` and `repositories/<name>/_layers`,
//! `_manifests`), simplified; blob paths as the OCI image layout's
//! (image-spec `image-layout.md`).

use std::io;
use std::path::{Path, PathBuf};

use ch04_overlay::files::{self, TempPath};
use ch05_images::digest::Digest;
use tokio::fs::{self, File};
use tokio::io::AsyncWriteExt;

/// Who holds `ROOT/registry.lock`: every server shared, `gc` exclusive.
pub type RootLock = nix::fcntl::Flock<std::fs::File>;

/// The registry's root directory and what lives under it.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

/// fsync a directory, so that a rename into it survives a crash: chapter
/// 4's, on a thread where blocking is allowed.
async fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_path_buf();
    blocking(move || files::sync_dir(&dir)).await
}

/// Runs a blocking file operation off the server's worker threads.
async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(io::Error::other)?
}

/// Whether `path` exists (an error other than "not found" counts as yes, so
/// that it surfaces when the caller opens the file).
async fn exists(path: &Path) -> bool {
    match fs::symlink_metadata(path).await {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// `Ok(false)` instead of a "not found" error.
fn removed(result: io::Result<()>) -> io::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The digests named by `<alg>/<hex>` files under `dir`, skipping anything
/// that is not one (a stray temporary file).
async fn digests_under(dir: &Path) -> io::Result<Vec<Digest>> {
    let mut out = Vec::new();
    let mut algorithms = match fs::read_dir(dir).await {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    while let Some(alg) = algorithms.next_entry().await? {
        let Ok(alg_name) = alg.file_name().into_string() else {
            continue;
        };
        let mut entries = fs::read_dir(alg.path()).await?;
        while let Some(entry) = entries.next_entry().await? {
            if let Ok(hex) = entry.file_name().into_string()
                && let Ok(digest) = Digest::parse(&format!("{alg_name}:{hex}"))
            {
                out.push(digest);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Storage {
    /// The storage at `root`, creating its directories if needed.
    pub async fn open(root: impl Into<PathBuf>) -> io::Result<Storage> {
        let storage = Storage { root: root.into() };
        for dir in ["blobs", "repositories", "uploads", "tmp"] {
            fs::create_dir_all(storage.root.join(dir)).await?;
        }
        Ok(storage)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes `ROOT/registry.lock` without waiting: shared for a server (any
    /// number may serve one root), exclusive for `gc` (which must be alone:
    /// a blob pushed but not yet named by a manifest looks like garbage).
    /// `None` if the other kind holds it.
    pub fn try_lock(&self, exclusive: bool) -> io::Result<Option<RootLock>> {
        use nix::fcntl::FlockArg;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("registry.lock"))?;
        let how = if exclusive {
            FlockArg::LockExclusiveNonblock
        } else {
            FlockArg::LockSharedNonblock
        };
        match nix::fcntl::Flock::lock(file, how) {
            Ok(lock) => Ok(Some(lock)),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(io::Error::from(errno)),
        }
    }

    /// `ROOT/uploads`.
    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// `ROOT/tmp`.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where the content of `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join(digest.blob_path())
    }

    fn repository_dir(&self, name: &str) -> PathBuf {
        self.root.join("repositories").join(name)
    }

    fn blob_link(&self, name: &str, digest: &Digest) -> PathBuf {
        self.repository_dir(name)
            .join("_blobs")
            .join(digest.blob_path())
    }

    fn manifest_link(&self, name: &str, digest: &Digest) -> PathBuf {
        self.repository_dir(name)
            .join("_manifests")
            .join(digest.blob_path())
    }

    fn tag_path(&self, name: &str, tag: &str) -> PathBuf {
        self.repository_dir(name).join("_tags").join(tag)
    }

    fn referrers_dir(&self, name: &str, subject: &Digest) -> PathBuf {
        self.repository_dir(name)
            .join("_referrers")
            .join(subject.blob_path())
    }

    // ANCHOR: temp_file
    /// A new empty file in `ROOT/tmp`, and its owner: chapter 4's
    /// [`TempPath`], which removes the file when dropped unless it was
    /// renamed into place by [`Storage::persist`].
    pub async fn temp_file(&self) -> io::Result<(File, TempPath)> {
        let dir = self.tmp_dir();
        let (file, temp) = blocking(move || files::create_temp_file(&dir, 0o644)).await?;
        Ok((File::from_std(file), temp))
    }

    /// Renames the temporary file to `target`, fsyncs `target`'s directory
    /// and disarms the owner.
    pub async fn persist(&self, temp: TempPath, target: &Path) -> io::Result<()> {
        let dir = target.parent().unwrap_or(Path::new("/"));
        fs::create_dir_all(dir).await?;
        fs::rename(temp.path(), target).await?;
        temp.keep();
        sync_dir(dir).await
    }
    // ANCHOR_END: temp_file

    // ANCHOR: write_atomic
    /// Writes `bytes` to `target` atomically: temp file, fsync, rename,
    /// fsync of the directory. Each writer has its own temporary file, so
    /// two writers of one tag need no lock: the last rename wins.
    pub async fn write_atomic(&self, target: &Path, bytes: &[u8]) -> io::Result<()> {
        let (mut file, temp) = self.temp_file().await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        drop(file);
        self.persist(temp, target).await
    }
    // ANCHOR_END: write_atomic

    // ----- repositories -----

    /// Whether anything was ever pushed to `name`.
    pub async fn repository_exists(&self, name: &str) -> bool {
        exists(&self.repository_dir(name)).await
    }

    /// Every repository, sorted: directories under `repositories/` that hold
    /// a `_blobs`, `_manifests` or `_tags` directory.
    pub async fn repositories(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.root.join("repositories"), String::new())];
        while let Some((dir, name)) = stack.pop() {
            let mut entries = match fs::read_dir(&dir).await {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut is_repository = false;
            while let Some(entry) = entries.next_entry().await? {
                let Ok(file_name) = entry.file_name().into_string() else {
                    continue;
                };
                if !entry.file_type().await?.is_dir() {
                    continue;
                }
                if file_name.starts_with('_') {
                    is_repository = true;
                } else {
                    let child = if name.is_empty() {
                        file_name
                    } else {
                        format!("{name}/{file_name}")
                    };
                    stack.push((entry.path(), child));
                }
            }
            if is_repository {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    // ----- blobs -----

    /// The size of the stored content `digest`, if it is stored at all.
    pub async fn blob_size(&self, digest: &Digest) -> io::Result<Option<u64>> {
        match fs::metadata(self.blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every stored blob's digest (for gc).
    pub async fn blob_digests(&self) -> io::Result<Vec<Digest>> {
        digests_under(&self.root.join("blobs")).await
    }

    // ANCHOR: commit_blob
    /// Moves a fully written, verified file into place as the content of
    /// `digest`. The caller has hashed it; this fsyncs it, renames it and
    /// fsyncs the directory. If the content is already there the new copy is
    /// simply dropped: same digest, same bytes.
    pub async fn commit_blob(&self, file: File, temp: TempPath, digest: &Digest) -> io::Result<()> {
        let target = self.blob_path(digest);
        if exists(&target).await {
            return Ok(());
        }
        file.sync_all().await?;
        drop(file);
        self.persist(temp, &target).await
    }
    // ANCHOR_END: commit_blob

    /// Like [`Storage::commit_blob`] for a file outside `tmp/` (an upload's
    /// data file), which is renamed, not copied.
    pub async fn commit_blob_path(&self, path: &Path, digest: &Digest) -> io::Result<()> {
        let target = self.blob_path(digest);
        if exists(&target).await {
            return Ok(());
        }
        File::open(path).await?.sync_all().await?;
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).await?;
        }
        fs::rename(path, &target).await?;
        if let Some(dir) = target.parent() {
            sync_dir(dir).await?;
        }
        Ok(())
    }

    /// Opens the stored content of `digest`.
    pub async fn open_blob(&self, digest: &Digest) -> io::Result<File> {
        File::open(self.blob_path(digest)).await
    }

    /// Reads a small stored blob (a manifest) whole.
    pub async fn read_blob(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        fs::read(self.blob_path(digest)).await
    }

    /// Deletes the stored content of `digest` (gc only).
    pub async fn delete_blob(&self, digest: &Digest) -> io::Result<bool> {
        removed(fs::remove_file(self.blob_path(digest)).await)
    }

    // ANCHOR: links
    /// Whether repository `name` has blob `digest` (and the content exists).
    pub async fn has_blob(&self, name: &str, digest: &Digest) -> io::Result<Option<u64>> {
        if !exists(&self.blob_link(name, digest)).await {
            return Ok(None);
        }
        self.blob_size(digest).await
    }

    /// Records that repository `name` has blob `digest`.
    pub async fn link_blob(&self, name: &str, digest: &Digest) -> io::Result<()> {
        let link = self.blob_link(name, digest);
        if exists(&link).await {
            return Ok(());
        }
        self.write_atomic(&link, b"").await
    }
    // ANCHOR_END: links

    /// Forgets that repository `name` has blob `digest`; `false` if it had not.
    pub async fn unlink_blob(&self, name: &str, digest: &Digest) -> io::Result<bool> {
        removed(fs::remove_file(self.blob_link(name, digest)).await)
    }

    /// The blobs repository `name` links (for gc).
    pub async fn blob_links(&self, name: &str) -> io::Result<Vec<Digest>> {
        digests_under(&self.repository_dir(name).join("_blobs")).await
    }

    // ----- manifests -----

    /// Records that repository `name` has manifest `digest` of `media_type`.
    pub async fn link_manifest(
        &self,
        name: &str,
        digest: &Digest,
        media_type: &str,
    ) -> io::Result<()> {
        self.write_atomic(&self.manifest_link(name, digest), media_type.as_bytes())
            .await
    }

    /// The media type of manifest `digest` in repository `name`, if it has it.
    pub async fn manifest_media_type(
        &self,
        name: &str,
        digest: &Digest,
    ) -> io::Result<Option<String>> {
        match fs::read_to_string(self.manifest_link(name, digest)).await {
            Ok(media_type) => Ok(Some(media_type)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Forgets manifest `digest` in repository `name`.
    pub async fn unlink_manifest(&self, name: &str, digest: &Digest) -> io::Result<bool> {
        removed(fs::remove_file(self.manifest_link(name, digest)).await)
    }

    /// The manifests repository `name` has.
    pub async fn manifest_links(&self, name: &str) -> io::Result<Vec<Digest>> {
        digests_under(&self.repository_dir(name).join("_manifests")).await
    }

    // ----- tags -----

    /// Points `tag` of repository `name` to `digest` (atomically replacing
    /// what it pointed to).
    pub async fn set_tag(&self, name: &str, tag: &str, digest: &Digest) -> io::Result<()> {
        self.write_atomic(&self.tag_path(name, tag), digest.to_string().as_bytes())
            .await
    }

    /// What `tag` points to. A tag file that does not hold a digest (written
    /// by hand) reads as no tag.
    pub async fn resolve_tag(&self, name: &str, tag: &str) -> io::Result<Option<Digest>> {
        match fs::read_to_string(self.tag_path(name, tag)).await {
            Ok(text) => Ok(Digest::parse(text.trim()).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn delete_tag(&self, name: &str, tag: &str) -> io::Result<bool> {
        removed(fs::remove_file(self.tag_path(name, tag)).await)
    }

    /// The tags of `name`, in byte order (Go's `sort.Strings`, as the spec
    /// asks).
    pub async fn tags(&self, name: &str) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut entries = match fs::read_dir(self.repository_dir(name).join("_tags")).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        while let Some(entry) = entries.next_entry().await? {
            if let Ok(tag) = entry.file_name().into_string()
                && crate::names::is_tag(&tag)
            {
                out.push(tag);
            }
        }
        out.sort();
        Ok(out)
    }

    // ----- referrers -----

    /// Records that manifest `referrer` in `name` has `subject` as its subject.
    pub async fn link_referrer(
        &self,
        name: &str,
        subject: &Digest,
        referrer: &Digest,
    ) -> io::Result<()> {
        let link = self.referrers_dir(name, subject).join(referrer.blob_path());
        self.write_atomic(&link, b"").await
    }

    pub async fn unlink_referrer(
        &self,
        name: &str,
        subject: &Digest,
        referrer: &Digest,
    ) -> io::Result<bool> {
        let link = self.referrers_dir(name, subject).join(referrer.blob_path());
        removed(fs::remove_file(link).await)
    }

    /// The manifests in `name` whose subject is `subject`.
    pub async fn referrers(&self, name: &str, subject: &Digest) -> io::Result<Vec<Digest>> {
        digests_under(&self.referrers_dir(name, subject)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ch05_images::digest::Algorithm;

    #[tokio::test]
    async fn links_tags_and_referrers_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).await.unwrap();
        let digest = Digest::of_bytes(Algorithm::Sha256, b"hello");
        let other = Digest::of_bytes(Algorithm::Sha512, b"hello");

        assert!(!storage.repository_exists("a/b").await);
        storage.link_blob("a/b", &digest).await.unwrap();
        assert!(storage.repository_exists("a/b").await);
        // Linked but no content: not there.
        assert_eq!(storage.has_blob("a/b", &digest).await.unwrap(), None);
        storage
            .write_atomic(&storage.blob_path(&digest), b"hello")
            .await
            .unwrap();
        assert_eq!(storage.has_blob("a/b", &digest).await.unwrap(), Some(5));
        assert_eq!(storage.has_blob("a/c", &digest).await.unwrap(), None);

        storage.set_tag("a/b", "v1", &digest).await.unwrap();
        storage.set_tag("a/b", "V0", &other).await.unwrap();
        assert_eq!(storage.tags("a/b").await.unwrap(), ["V0", "v1"]);
        assert_eq!(
            storage.resolve_tag("a/b", "v1").await.unwrap(),
            Some(digest.clone())
        );
        storage.link_referrer("a/b", &digest, &other).await.unwrap();
        assert_eq!(
            storage.referrers("a/b", &digest).await.unwrap(),
            std::slice::from_ref(&other)
        );
        storage.link_manifest("a/b/c", &other, "x").await.unwrap();
        assert_eq!(storage.repositories().await.unwrap(), ["a/b", "a/b/c"]);
        // Nothing left in tmp/.
        assert_eq!(std::fs::read_dir(storage.tmp_dir()).unwrap().count(), 0);
    }
}
