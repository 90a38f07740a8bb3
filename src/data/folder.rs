//! Image folders: `root/<class>/*.png|jpg|jpeg`, decoded on several threads.

use super::dataset::{file_err, Dataset};
use crate::error::{Error, Result};
use image::RgbImage;
use std::path::{Path, PathBuf};

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

impl Dataset {
    /// Loads `root/<class>/*.png|jpg|jpeg` (extensions case-insensitive). Classes are the
    /// subfolder names sorted; files are sorted by name within a class; other files and
    /// hidden entries (names starting with `.`) are skipped. Images are converted to RGB and
    /// must all share one size.
    pub fn image_folder(root: &Path) -> Result<Dataset> {
        let mut class_dirs = Vec::new();
        for path in read_dir_sorted(root)? {
            if path.is_dir() && !is_hidden(&path) {
                class_dirs.push(path);
            }
        }
        if class_dirs.is_empty() {
            return Err(file_err(
                root,
                "no class folders: expected <folder>/<class>/*.png|jpg|jpeg",
            ));
        }
        let mut classes = Vec::with_capacity(class_dirs.len());
        let mut files: Vec<(PathBuf, u32)> = Vec::new();
        for (label, dir) in class_dirs.iter().enumerate() {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let before = files.len();
            for path in read_dir_sorted(dir)? {
                if path.is_file() && !is_hidden(&path) && has_image_ext(&path) {
                    files.push((path, label as u32));
                }
            }
            if files.len() == before {
                return Err(file_err(
                    dir,
                    format!("class folder '{name}' contains no .png, .jpg or .jpeg images"),
                ));
            }
            classes.push(name);
        }
        let (images, height, width) = decode_all(&files)?;
        Ok(Dataset {
            images,
            labels: files.iter().map(|(_, l)| *l).collect(),
            len: files.len(),
            channels: 3,
            height,
            width,
            classes,
        })
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            file_err(dir, "folder not found")
        } else {
            file_err(dir, format!("cannot read folder: {e}"))
        }
    })?;
    let mut out = Vec::new();
    for entry in rd {
        out.push(
            entry
                .map_err(|e| file_err(dir, format!("cannot read folder: {e}")))?
                .path(),
        );
    }
    out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(out)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn has_image_ext(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn decode_rgb(path: &Path) -> Result<RgbImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| file_err(path, format!("cannot open image: {e}")))?
        // Trust the content over the extension (a PNG saved as .jpg still loads).
        .with_guessed_format()
        .map_err(|e| file_err(path, format!("cannot read image: {e}")))?;
    let img = reader
        .decode()
        .map_err(|e| file_err(path, format!("cannot decode image: {e}")))?;
    Ok(img.into_rgb8())
}

/// Interleaved RGB → R, G, B planes.
fn write_planar(img: &RgbImage, out: &mut [u8]) {
    let plane = out.len() / 3;
    for (i, px) in img.pixels().enumerate() {
        out[i] = px[0];
        out[plane + i] = px[1];
        out[2 * plane + i] = px[2];
    }
}

/// Decodes every file into one planar buffer; the first image fixes the size. On failure
/// the error is that of the first failing file in list order, whatever the thread timing.
fn decode_all(files: &[(PathBuf, u32)]) -> Result<(Vec<u8>, usize, usize)> {
    let Some((first_path, _)) = files.first() else {
        return Err(Error::Invalid("no images to load".into()));
    };
    let first = decode_rgb(first_path)?;
    let (w, h) = (first.width() as usize, first.height() as usize);
    if w == 0 || h == 0 {
        return Err(file_err(first_path, "image has no pixels"));
    }
    let per_image = 3 * h * w;
    let total = files.len().checked_mul(per_image).ok_or_else(|| {
        Error::Invalid(format!(
            "{} images of {w}x{h} do not fit in memory",
            files.len()
        ))
    })?;
    let mut images = vec![0u8; total];
    write_planar(&first, &mut images[..per_image]);

    let rest = &files[1..];
    if !rest.is_empty() {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(rest.len());
        let chunk = rest.len().div_ceil(threads);
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let mut handles = Vec::new();
            for (buf, part) in images[per_image..]
                .chunks_mut(chunk * per_image)
                .zip(rest.chunks(chunk))
            {
                let spawned = std::thread::Builder::new()
                    .name("image-decode".into())
                    .spawn_scoped(s, move || decode_chunk(part, buf, (w, h), first_path));
                handles.push(spawned);
            }
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or_else(|_| {
                        Err(Error::Invalid("an image decoding thread panicked".into()))
                    }),
                    Err(e) => Err(Error::Invalid(format!(
                        "cannot start an image decoding thread: {e}"
                    ))),
                })
                .collect()
        });
        results.into_iter().collect::<Result<Vec<()>>>()?;
    }
    Ok((images, h, w))
}

fn decode_chunk(
    files: &[(PathBuf, u32)],
    out: &mut [u8],
    (w, h): (usize, usize),
    first: &Path,
) -> Result<()> {
    let per_image = 3 * h * w;
    for ((path, _), buf) in files.iter().zip(out.chunks_mut(per_image)) {
        let img = decode_rgb(path)?;
        let (iw, ih) = (img.width() as usize, img.height() as usize);
        if (iw, ih) != (w, h) {
            return Err(file_err(
                path,
                format!(
                    "image is {iw}x{ih} pixels but {} is {w}x{h}; all images must have the \
                     same size (resize them first)",
                    first.display()
                ),
            ));
        }
        write_planar(&img, buf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::dataset::Split;
    use super::super::testutil::TempDir;
    use super::*;
    use image::{GrayImage, Luma, Rgb};

    /// A w×h image whose pixel (x, y) is (tag, x, y).
    fn img(tag: u8, w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([tag, x as u8, y as u8]))
    }

    fn class(root: &Path, name: &str) -> PathBuf {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn loads_classes_sorted_planar() {
        let t = TempDir::new("folder");
        let cats = class(t.path(), "cats");
        let ants = class(t.path(), "ants");
        img(1, 4, 3).save(cats.join("b.png")).unwrap();
        img(2, 4, 3).save(cats.join("a.PNG")).unwrap();
        // A PNG with a .jpg name, and grayscale: both load.
        let mut bytes = Vec::new();
        GrayImage::from_pixel(4, 3, Luma([77]))
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        std::fs::write(ants.join("z.jpg"), bytes).unwrap();
        std::fs::write(ants.join("notes.txt"), "ignored").unwrap();
        std::fs::write(ants.join(".hidden.png"), "ignored").unwrap();
        class(t.path(), ".ipynb_checkpoints");

        let d = Dataset::image_folder(t.path()).unwrap();
        assert_eq!(d.classes, vec!["ants", "cats"]);
        assert_eq!((d.len, d.channels, d.height, d.width), (3, 3, 3, 4));
        assert_eq!(d.labels, vec![0, 1, 1]);
        assert_eq!(d.image(0), &[77u8; 36][..]);
        // cats/a.PNG (tag 2) sorts before cats/b.png (tag 1).
        let a = d.image(1);
        assert_eq!(&a[..12], &[2u8; 12]);
        // G plane = x, B plane = y, row-major.
        assert_eq!(&a[12..16], &[0, 1, 2, 3]);
        assert_eq!(&a[24..36], &[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(d.image(2)[0], 1);
        assert!(d.check().is_ok());
    }

    #[test]
    fn jpeg_decodes() {
        let t = TempDir::new("jpeg");
        let c = class(t.path(), "only");
        img(200, 8, 8).save(c.join("x.jpeg")).unwrap();
        let d = Dataset::image_folder(t.path()).unwrap();
        assert_eq!((d.len, d.height, d.width), (1, 8, 8));
    }

    #[test]
    fn differing_sizes_named() {
        let t = TempDir::new("sizes");
        let c = class(t.path(), "c");
        for i in 0..6 {
            img(0, 4, 4).save(c.join(format!("{i}.png"))).unwrap();
        }
        img(0, 5, 4).save(c.join("4.png")).unwrap();
        img(0, 6, 6).save(c.join("5.png")).unwrap();
        let e = Dataset::image_folder(t.path()).unwrap_err().to_string();
        assert!(
            e.contains("4.png") && e.contains("5x4") && e.contains("4x4"),
            "{e}"
        );
        assert!(e.contains("0.png"), "{e}");
    }

    #[test]
    fn empty_class_named() {
        let t = TempDir::new("emptyclass");
        img(0, 2, 2)
            .save(class(t.path(), "full").join("a.png"))
            .unwrap();
        let empty = class(t.path(), "hollow");
        std::fs::write(empty.join("readme.txt"), "no images").unwrap();
        let e = Dataset::image_folder(t.path()).unwrap_err().to_string();
        assert!(e.contains("hollow") && e.contains("no .png"), "{e}");
    }

    #[test]
    fn corrupt_file_named() {
        let t = TempDir::new("corrupt");
        let c = class(t.path(), "c");
        img(0, 2, 2).save(c.join("a.png")).unwrap();
        std::fs::write(c.join("b.png"), b"\x89PNG\r\n\x1a\n garbage").unwrap();
        let e = Dataset::image_folder(t.path()).unwrap_err().to_string();
        assert!(e.contains("b.png") && e.contains("decode"), "{e}");
        // Also when it is the first file.
        std::fs::write(c.join("0.png"), b"not an image").unwrap();
        let e = Dataset::image_folder(t.path()).unwrap_err().to_string();
        assert!(e.contains("0.png"), "{e}");
    }

    #[test]
    fn no_class_folders() {
        let t = TempDir::new("noclass");
        img(0, 2, 2).save(t.path().join("loose.png")).unwrap();
        let e = Dataset::image_folder(t.path()).unwrap_err().to_string();
        assert!(e.contains(&t.path().display().to_string()) && e.contains("no class"));
        let e = Dataset::image_folder(&t.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing") && e.contains("not found"), "{e}");
    }

    #[test]
    fn open_picks_split_subfolders() {
        let t = TempDir::new("splits");
        img(1, 2, 2)
            .save(class(&t.path().join("train"), "a").join("x.png"))
            .unwrap();
        img(2, 2, 2)
            .save(class(&t.path().join("val"), "a").join("x.png"))
            .unwrap();
        let tr = Dataset::open(t.path(), Split::Train).unwrap();
        let te = Dataset::open(t.path(), Split::Test).unwrap();
        assert_eq!((tr.image(0)[0], te.image(0)[0]), (1, 2));
        std::fs::remove_dir_all(t.path().join("val")).unwrap();
        let e = Dataset::open(t.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("test/"), "{e}");
        // Without split folders, the folder itself is the dataset.
        let u = TempDir::new("nosplit");
        img(3, 2, 2)
            .save(class(u.path(), "a").join("x.png"))
            .unwrap();
        assert_eq!(Dataset::open(u.path(), Split::Test).unwrap().len, 1);
    }
}
