import { defineConfig } from 'vite';

// Two pages share one build: the admin console and the players' page. The output is
// committed in crates/server/assets/ and embedded in the `lottery` binary, which serves
// /console, /play/{activity_id} and /assets/*.
export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: '../crates/server/assets',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    // No source maps: the binary serves what users need, nothing more.
    sourcemap: false,
    modulePreload: { polyfill: false },
    rolldownOptions: {
      input: { console: 'console.html', play: 'play.html' },
      // The code both pages use, under one plain name.
      output: {
        chunkFileNames: 'assets/shared-[hash].js',
        assetFileNames: (asset) =>
          asset.names.some((n) => n.endsWith('.css')) ? 'assets/styles-[hash][extname]' : 'assets/[name]-[hash][extname]',
      },
    },
  },
});
