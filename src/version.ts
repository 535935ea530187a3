// Kept equal to package.json's version by test/unit/version.test.ts; a constant survives bundling.
export const VERSION = '0.1.0';
