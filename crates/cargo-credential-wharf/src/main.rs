//! `cargo-credential-wharf`: see the library documentation and docs/credential-provider.md.

use cargo_credential_wharf::WharfCredential;

const USAGE: &str = "\
cargo-credential-wharf: a cargo credential provider for Wharf's Trusted Publishing

Cargo runs this program itself; configure it in .cargo/config.toml:

    [registries.wharf]
    index = \"sparse+https://wharf.example.com/index/\"
    credential-provider = \"cargo-credential-wharf\"

Provider arguments (append them to `credential-provider`):
    --audience AUD           the `aud` to request for the ID token
                             (default: $WHARF_AUDIENCE, else the registry API host)
    --gitlab-token-env NAME  the variable that holds GitLab's ID token (default: WHARF_ID_TOKEN)

See docs/credential-provider.md in the Wharf repository.";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|arg| arg == "--cargo-plugin") {
        if args.iter().any(|arg| arg == "--version" || arg == "-V") {
            println!("cargo-credential-wharf {}", env!("CARGO_PKG_VERSION"));
        } else {
            println!("{USAGE}");
        }
        return;
    }
    cargo_credential::main(WharfCredential::from_process_env());
}
