//! CIFAR-10 / CIFAR-100 binary files and the shipped CIFAR-10 mini sets.
//!
//! CIFAR-10 record: 1 label byte + 3072 pixel bytes (R, G, B planes of 32×32).
//! CIFAR-100 record: 1 coarse label byte + 1 fine label byte + 3072 pixel bytes.

use super::dataset::{file_err, list_dir, Dataset, Split};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The CIFAR-10 class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;

static BUILTIN_TRAIN: &[u8] = include_bytes!("../../assets/cifar10-mini/train_1000.bin");
static BUILTIN_TEST: &[u8] = include_bytes!("../../assets/cifar10-mini/test_1000.bin");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Cifar10,
    Cifar100,
}

impl Format {
    /// Bytes before the pixels.
    fn header(self) -> usize {
        match self {
            Format::Cifar10 => 1,
            Format::Cifar100 => 2,
        }
    }

    /// Offset of the label used (CIFAR-100: the fine label).
    fn label_at(self) -> usize {
        self.header() - 1
    }

    fn record(self) -> usize {
        self.header() + PIXELS
    }

    fn name(self) -> &'static str {
        match self {
            Format::Cifar10 => "CIFAR-10",
            Format::Cifar100 => "CIFAR-100",
        }
    }

    /// The class-names file shipped next to the binaries.
    fn names_file(self) -> &'static str {
        match self {
            Format::Cifar10 => "batches.meta.txt",
            Format::Cifar100 => "fine_label_names.txt",
        }
    }

    fn default_classes(self) -> Vec<String> {
        match self {
            Format::Cifar10 => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
            Format::Cifar100 => (0..100).map(|i| format!("class_{i}")).collect(),
        }
    }
}

impl Dataset {
    /// Reads CIFAR-10 binary files (e.g. `data_batch_1.bin` .. `data_batch_5.bin`) in the
    /// given order. Class names come from `batches.meta.txt` next to the first file when it
    /// exists (its line count is then the class count), else the standard CIFAR-10 names.
    pub fn cifar10_bin(paths: &[PathBuf]) -> Result<Dataset> {
        read_files(paths, Format::Cifar10)
    }

    /// Reads CIFAR-100 binary files (`train.bin`, `test.bin`) using the fine labels. Class
    /// names come from `fine_label_names.txt` next to the first file when it exists, else
    /// `class_0` .. `class_99`.
    pub fn cifar100_bin(paths: &[PathBuf]) -> Result<Dataset> {
        read_files(paths, Format::Cifar100)
    }

    /// The shipped CIFAR-10 mini training set: 1,000 images, 100 per class.
    pub fn builtin_train() -> Result<Dataset> {
        builtin(BUILTIN_TRAIN, "builtin:cifar10-mini/train_1000.bin")
    }

    /// The shipped CIFAR-10 mini test set: 1,000 images, 100 per class.
    pub fn builtin_test() -> Result<Dataset> {
        builtin(BUILTIN_TEST, "builtin:cifar10-mini/test_1000.bin")
    }
}

fn builtin(bytes: &[u8], name: &str) -> Result<Dataset> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let classes = Format::Cifar10.default_classes();
    parse_records(
        bytes,
        Path::new(name),
        Format::Cifar10,
        classes.len(),
        &mut images,
        &mut labels,
    )?;
    Ok(assemble(images, labels, classes))
}

fn assemble(images: Vec<u8>, labels: Vec<u32>, classes: Vec<String>) -> Dataset {
    Dataset {
        images,
        len: labels.len(),
        labels,
        channels: 3,
        height: SIDE,
        width: SIDE,
        classes,
    }
}

fn read_files(paths: &[PathBuf], format: Format) -> Result<Dataset> {
    let Some(first) = paths.first() else {
        return Err(Error::Invalid(format!("no {} files given", format.name())));
    };
    let names = first
        .parent()
        .map(|dir| dir.join(format.names_file()))
        .filter(|p| p.is_file());
    let classes = match names {
        Some(p) => read_names(&p)?,
        None => format.default_classes(),
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                file_err(path, format!("{} file not found", format.name()))
            } else {
                file_err(path, format!("cannot read: {e}"))
            }
        })?;
        parse_records(
            &bytes,
            path,
            format,
            classes.len(),
            &mut images,
            &mut labels,
        )?;
    }
    Ok(assemble(images, labels, classes))
}

/// Appends the records of one file's bytes; `path` is only for messages.
fn parse_records(
    bytes: &[u8],
    path: &Path,
    format: Format,
    n_classes: usize,
    images: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    let rec = format.record();
    if bytes.is_empty() {
        return Err(file_err(
            path,
            format!("empty file: no {} records", format.name()),
        ));
    }
    if !bytes.len().is_multiple_of(rec) {
        return Err(file_err(
            path,
            format!(
                "{} bytes is not a whole number of {} records of {rec} bytes ({} label \
                 byte(s) + {PIXELS} pixel bytes): {} complete record(s) and {} bytes of a \
                 truncated one",
                bytes.len(),
                format.name(),
                format.header(),
                bytes.len() / rec,
                bytes.len() % rec
            ),
        ));
    }
    images.reserve(bytes.len() / rec * PIXELS);
    labels.reserve(bytes.len() / rec);
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let label = r[format.label_at()];
        if label as usize >= n_classes {
            return Err(file_err(
                path,
                format!("record {i} has label {label} but there are only {n_classes} classes"),
            ));
        }
        labels.push(label as u32);
        images.extend_from_slice(&r[format.header()..]);
    }
    Ok(())
}

/// Class names, one per non-blank line.
fn read_names(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| file_err(path, format!("cannot read class names: {e}")))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Err(file_err(path, "class names file is empty"));
    }
    Ok(names)
}

/// `data_batch_<n>.bin`.
pub(super) fn is_cifar10_train_batch(name: &str) -> bool {
    name.starts_with("data_batch_") && name.ends_with(".bin")
}

/// Sort key putting `data_batch_2.bin` before `data_batch_10.bin`.
fn batch_number(name: &str) -> (Option<u64>, String) {
    let n = name
        .strip_prefix("data_batch_")
        .and_then(|s| s.strip_suffix(".bin"))
        .and_then(|s| s.parse().ok());
    (n, name.to_string())
}

/// A single file given to [`Dataset::open`].
pub(super) fn open_file(path: &Path) -> Result<Dataset> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if [".tar.gz", ".tgz", ".tar", ".zip"]
        .iter()
        .any(|ext| name.ends_with(ext))
    {
        return Err(file_err(
            path,
            "this is an archive; extract it (e.g. `tar xzf`) and point at the extracted folder",
        ));
    }
    if [".png", ".jpg", ".jpeg"]
        .iter()
        .any(|ext| name.ends_with(ext))
    {
        return Err(file_err(
            path,
            "a single image is not a dataset; point at the folder holding <class>/ subfolders",
        ));
    }
    let len = std::fs::metadata(path)
        .map_err(|e| file_err(path, format!("cannot read: {e}")))?
        .len();
    let fits = |f: Format| len.is_multiple_of(f.record() as u64);
    let beside_names = path
        .parent()
        .is_some_and(|d| d.join(Format::Cifar100.names_file()).is_file());
    // The names decide first (CIFAR-10's data_batch_*.bin / test_batch.bin; CIFAR-100's
    // train.bin / test.bin, or its names file beside it), so a truncated file is reported
    // against its own record size rather than read as the other format; only a file named
    // neither way is told by its length.
    let cifar10_name = is_cifar10_train_batch(&name) || name == "test_batch.bin";
    let cifar100_name = name == "train.bin" || name == "test.bin" || beside_names;
    let (format, why) = match (cifar10_name, cifar100_name) {
        (true, _) => (Format::Cifar10, "by its name"),
        (false, true) => (Format::Cifar100, "by its name"),
        _ => match (fits(Format::Cifar10), fits(Format::Cifar100)) {
            (false, true) => (Format::Cifar100, "by its length"),
            _ => (Format::Cifar10, "by its length"),
        },
    };
    read_files(&[path.to_path_buf()], format).map_err(|e| match e {
        Error::File { path, msg } => Error::File {
            path,
            msg: format!("{msg} (read as {} binary, told {why})", format.name()),
        },
        other => other,
    })
}

pub(super) fn open_cifar10_dir(dir: &Path, split: Split) -> Result<Dataset> {
    let files: Vec<PathBuf> = match split {
        Split::Train => {
            let mut names: Vec<String> = list_dir(dir)?
                .into_iter()
                .filter(|(n, d)| !d && is_cifar10_train_batch(n))
                .map(|(n, _)| n)
                .collect();
            if names.is_empty() {
                return Err(file_err(
                    dir,
                    "no CIFAR-10 training batches (data_batch_*.bin) in this folder",
                ));
            }
            names.sort_by_key(|n| batch_number(n));
            names.into_iter().map(|n| dir.join(n)).collect()
        }
        Split::Test => vec![dir.join("test_batch.bin")],
    };
    read_files(&files, Format::Cifar10)
}

pub(super) fn open_cifar100_dir(dir: &Path, split: Split) -> Result<Dataset> {
    let file = match split {
        Split::Train => "train.bin",
        Split::Test => "test.bin",
    };
    read_files(&[dir.join(file)], Format::Cifar100)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::TempDir;
    use super::*;

    /// A CIFAR-10 record whose pixels are `seed + position` (mod 256).
    fn rec10(label: u8, seed: u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend((0..PIXELS).map(|i| (i as u8).wrapping_add(seed)));
        r
    }

    fn rec100(coarse: u8, fine: u8, seed: u8) -> Vec<u8> {
        let mut r = vec![coarse];
        r.extend(rec10(fine, seed));
        r
    }

    fn write(path: &Path, records: &[Vec<u8>]) {
        std::fs::write(path, records.concat()).unwrap();
    }

    fn err_text(r: Result<Dataset>) -> String {
        r.expect_err("expected an error").to_string()
    }

    #[test]
    fn cifar10_files_in_order() {
        let t = TempDir::new("c10");
        let a = t.path().join("a.bin");
        let b = t.path().join("b.bin");
        write(&a, &[rec10(3, 0), rec10(9, 1)]);
        write(&b, &[rec10(0, 2)]);
        let d = Dataset::cifar10_bin(&[a, b]).unwrap();
        assert_eq!((d.len, d.channels, d.height, d.width), (3, 3, 32, 32));
        assert_eq!(d.labels, vec![3, 9, 0]);
        assert_eq!(d.classes[3], "cat");
        assert_eq!(d.image(1), &rec10(9, 1)[1..]);
        assert_eq!(d.image(2), &rec10(0, 2)[1..]);
        assert!(d.check().is_ok());
    }

    #[test]
    fn cifar10_directory_splits_and_names() {
        let t = TempDir::new("c10dir");
        let dir = t.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&dir).unwrap();
        // data_batch_10 must come after data_batch_2.
        write(&dir.join("data_batch_10.bin"), &[rec10(2, 10)]);
        write(&dir.join("data_batch_2.bin"), &[rec10(1, 2)]);
        write(&dir.join("data_batch_1.bin"), &[rec10(0, 1)]);
        write(&dir.join("test_batch.bin"), &[rec10(2, 7), rec10(2, 8)]);
        std::fs::write(dir.join("batches.meta.txt"), "x\ny\nz\n\n\n").unwrap();
        // The parent folder is recognised too.
        let tr = Dataset::open(t.path(), Split::Train).unwrap();
        assert_eq!(tr.labels, vec![0, 1, 2]);
        assert_eq!(tr.image(2), &rec10(2, 10)[1..]);
        assert_eq!(tr.classes, vec!["x", "y", "z"]);
        let te = Dataset::open(&dir, Split::Test).unwrap();
        assert_eq!(te.len, 2);
        assert_eq!(te.image(1), &rec10(2, 8)[1..]);
        // A single file picks up the names beside it.
        let one = Dataset::open(&dir.join("data_batch_2.bin"), Split::Test).unwrap();
        assert_eq!((one.len, one.classes.len()), (1, 3));
    }

    #[test]
    fn cifar100_fine_labels_and_names() {
        let t = TempDir::new("c100");
        write(
            &t.path().join("train.bin"),
            &[rec100(19, 99, 0), rec100(0, 42, 5)],
        );
        write(&t.path().join("test.bin"), &[rec100(1, 7, 3)]);
        let tr = Dataset::open(t.path(), Split::Train).unwrap();
        assert_eq!(tr.labels, vec![99, 42]);
        assert_eq!(tr.classes.len(), 100);
        assert_eq!(tr.classes[42], "class_42");
        assert_eq!(tr.image(1), &rec100(0, 42, 5)[2..]);
        let te = Dataset::open(t.path(), Split::Test).unwrap();
        assert_eq!(te.labels, vec![7]);

        let names: String = (0..100).map(|i| format!("n{i}\n")).collect();
        std::fs::write(t.path().join("fine_label_names.txt"), names).unwrap();
        let d = Dataset::cifar100_bin(&[t.path().join("train.bin")]).unwrap();
        assert_eq!(d.classes[99], "n99");
    }

    #[test]
    fn cifar100_single_file_detected_by_length() {
        let t = TempDir::new("c100len");
        let p = t.path().join("whatever.bin");
        write(&p, &[rec100(0, 55, 0)]);
        let d = Dataset::open(&p, Split::Train).unwrap();
        assert_eq!((d.labels[0], d.classes.len()), (55, 100));
    }

    #[test]
    fn a_truncated_cifar10_batch_is_not_read_as_cifar100() {
        // 3,074 CIFAR-10 records' worth of bytes cut to a multiple of 3,074 (a CIFAR-100
        // record): the name says CIFAR-10, and the error says so.
        let t = TempDir::new("c10as100");
        let p = t.path().join("data_batch_1.bin");
        let bytes: Vec<u8> = (0..3).flat_map(|i| rec10(i, 0)).collect();
        std::fs::write(&p, &bytes[..3074 * 2]).unwrap();
        let e = err_text(Dataset::open(&p, Split::Train));
        assert!(
            e.contains("3073") && e.contains("CIFAR-10 binary, told by its name"),
            "{e}"
        );
    }

    #[test]
    fn missing_file_names_it() {
        let t = TempDir::new("missing");
        let p = t.path().join("data_batch_9.bin");
        let e = err_text(Dataset::cifar10_bin(&[p]));
        assert!(
            e.contains("data_batch_9.bin") && e.contains("not found"),
            "{e}"
        );
        // A CIFAR-10 folder without its test batch.
        write(&t.path().join("data_batch_1.bin"), &[rec10(0, 0)]);
        let e = err_text(Dataset::open(t.path(), Split::Test));
        assert!(e.contains("test_batch.bin"), "{e}");
        assert!(Dataset::cifar10_bin(&[]).is_err());
    }

    #[test]
    fn truncated_record_names_file_and_sizes() {
        let t = TempDir::new("trunc");
        let p = t.path().join("data_batch_1.bin");
        let mut bytes = [rec10(0, 0), rec10(1, 0)].concat();
        bytes.truncate(3073 + 100);
        std::fs::write(&p, bytes).unwrap();
        let e = err_text(Dataset::cifar10_bin(&[p]));
        assert!(e.contains("data_batch_1.bin"), "{e}");
        assert!(e.contains("3173 bytes") && e.contains("3073"), "{e}");

        let p = t.path().join("empty.bin");
        std::fs::write(&p, b"").unwrap();
        let e = err_text(Dataset::cifar10_bin(&[p]));
        assert!(e.contains("empty.bin") && e.contains("empty"), "{e}");
    }

    #[test]
    fn label_out_of_range_names_file_record_and_label() {
        let t = TempDir::new("label");
        let p = t.path().join("bad.bin");
        write(&p, &[rec10(0, 0), rec10(4, 0), rec10(12, 0)]);
        let e = err_text(Dataset::cifar10_bin(std::slice::from_ref(&p)));
        assert!(e.contains("bad.bin") && e.contains("record 2"), "{e}");
        assert!(e.contains("label 12") && e.contains("10 classes"), "{e}");

        // With a names file the class count is its line count.
        std::fs::write(t.path().join("batches.meta.txt"), "a\nb\nc\n").unwrap();
        let e = err_text(Dataset::cifar10_bin(&[p]));
        assert!(e.contains("record 1") && e.contains("label 4"), "{e}");
        assert!(e.contains("3 classes"), "{e}");

        let q = t.path().join("train.bin");
        write(&q, &[rec100(0, 100, 0)]);
        let e = err_text(Dataset::cifar100_bin(&[q]));
        assert!(e.contains("train.bin") && e.contains("label 100"), "{e}");
    }

    #[test]
    fn helpful_errors_for_other_layouts() {
        let t = TempDir::new("layouts");
        std::fs::write(t.path().join("data_batch_1"), b"pickle").unwrap();
        let e = err_text(Dataset::open(t.path(), Split::Train));
        assert!(e.contains("Python"), "{e}");
        let gz = t.path().join("cifar-10-binary.tar.gz");
        std::fs::write(&gz, b"gz").unwrap();
        let e = err_text(Dataset::open(&gz, Split::Train));
        assert!(
            e.contains("cifar-10-binary.tar.gz") && e.contains("extract"),
            "{e}"
        );
        let names = t.path().join("batches.meta.txt");
        std::fs::write(&names, "\n\n").unwrap();
        write(&t.path().join("x.bin"), &[rec10(0, 0)]);
        let e = err_text(Dataset::cifar10_bin(&[t.path().join("x.bin")]));
        assert!(e.contains("batches.meta.txt") && e.contains("empty"), "{e}");
    }

    #[test]
    fn builtin_sets() {
        for d in [Dataset::builtin_train(), Dataset::builtin_test()] {
            let d = d.unwrap();
            assert_eq!(d.len, 1000);
            assert_eq!(d.images.len(), 1000 * 3072);
            assert_eq!(d.class_counts(), vec![100; 10]);
            assert_eq!(d.classes, CIFAR10_CLASSES.to_vec());
            assert!(d.check().is_ok());
        }
        assert_ne!(
            Dataset::builtin_train().unwrap().images,
            Dataset::builtin_test().unwrap().images
        );
    }
}
