//! Building `.crate` files and cargo's publish request bodies in memory.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct CrateBuilder {
    pub name: String,
    pub version: String,
    pub deps: Vec<Value>,
    pub features: Value,
    pub description: Option<String>,
    pub license: Option<String>,
    pub readme: Option<String>,
    pub links: Option<String>,
    pub rust_version: Option<String>,
    /// Extra files `(path inside the package folder, contents)`.
    pub files: Vec<(String, Vec<u8>)>,
    /// Overrides the `Cargo.toml` inside the tarball.
    pub manifest: Option<String>,
}

impl CrateBuilder {
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            deps: Vec::new(),
            features: json!({}),
            description: Some(format!("The {name} crate, for tests")),
            license: Some("MIT".to_owned()),
            readme: None,
            links: None,
            rust_version: None,
            files: Vec::new(),
            manifest: None,
        }
    }

    /// A dependency on a crate of this registry.
    pub fn dep(mut self, name: &str, req: &str) -> Self {
        self.deps.push(dep_json(name, req, None, None));
        self
    }

    pub fn dep_json(mut self, dep: Value) -> Self {
        self.deps.push(dep);
        self
    }

    pub fn features(mut self, features: Value) -> Self {
        self.features = features;
        self
    }

    pub fn readme(mut self, text: &str) -> Self {
        self.readme = Some(text.to_owned());
        self.files
            .push(("README.md".to_owned(), text.as_bytes().to_vec()));
        self
    }

    pub fn file(mut self, path: &str, contents: &[u8]) -> Self {
        self.files.push((path.to_owned(), contents.to_vec()));
        self
    }

    pub fn metadata(&self) -> Value {
        json!({
            "name": self.name,
            "vers": self.version,
            "deps": self.deps,
            "features": self.features,
            "authors": ["Test <test@example.com>"],
            "description": self.description,
            "documentation": null,
            "homepage": null,
            "readme": self.readme,
            "readme_file": self.readme.as_ref().map(|_| "README.md"),
            "keywords": ["test"],
            "categories": [],
            "license": self.license,
            "license_file": null,
            "repository": "https://example.com/repo",
            "badges": {},
            "links": self.links,
            "rust_version": self.rust_version,
        })
    }

    pub fn manifest(&self) -> String {
        self.manifest.clone().unwrap_or_else(|| {
            format!(
                "[package]\nname = \"{}\"\nversion = \"{}\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"test\"\n",
                self.name, self.version
            )
        })
    }

    /// The `.crate` file: a gzipped tar whose entries lie under `{name}-{version}/`.
    pub fn tarball(&self) -> Vec<u8> {
        let prefix = format!("{}-{}", self.name, self.version);
        let mut files = vec![
            ("Cargo.toml".to_owned(), self.manifest().into_bytes()),
            ("src/lib.rs".to_owned(), b"pub fn hello() {}\n".to_vec()),
        ];
        files.extend(self.files.iter().cloned());
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        for (path, contents) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, format!("{prefix}/{path}"), &contents[..])
                .expect("append");
        }
        builder.into_inner().expect("tar").finish().expect("gzip")
    }

    pub fn publish_body(&self) -> Vec<u8> {
        publish_body(&self.metadata(), &self.tarball())
    }
}

pub fn dep_json(name: &str, req: &str, rename: Option<&str>, registry: Option<&str>) -> Value {
    json!({
        "name": name,
        "version_req": req,
        "features": [],
        "optional": false,
        "default_features": true,
        "target": null,
        "kind": "normal",
        "registry": registry,
        "explicit_name_in_toml": rename,
    })
}

/// cargo's wire format: u32 LE JSON length, JSON, u32 LE crate length, crate.
pub fn publish_body(metadata: &Value, tarball: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(metadata).expect("json");
    let mut body = Vec::new();
    body.write_all(&(json.len() as u32).to_le_bytes())
        .expect("write");
    body.write_all(&json).expect("write");
    body.write_all(&(tarball.len() as u32).to_le_bytes())
        .expect("write");
    body.write_all(tarball).expect("write");
    body
}

/// Bytes that do not compress.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
