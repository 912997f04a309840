import { defineConfig } from "vitest/config";

// Tauri serves the built files; a fixed port keeps `vite dev` predictable.
export default defineConfig({
  clearScreen: false,
  server: { port: 1420, strictPort: true, host: "127.0.0.1" },
  build: { target: "es2022", outDir: "dist", emptyOutDir: true },
  test: { environment: "happy-dom", restoreMocks: true },
});
