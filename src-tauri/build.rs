fn main() {
    // The app's config lives at the repository root (design.md), not beside this crate.
    let attributes = tauri_build::Attributes::new();
    tauri_build::try_build(attributes.config_path("../tauri.conf.json")).unwrap_or_else(|e| {
        eprintln!("tauri-build failed: {e:#}");
        std::process::exit(1)
    });
}
