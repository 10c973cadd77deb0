// @ts-check
/**
 * Lint as a reviewer: type-aware rules that catch what the compiler lets through (a promise nobody
 * awaits, an async callback where a void one is expected, a switch that forgets a union member),
 * and a ceiling on function length so a module stays readable. `npm test` runs it.
 */
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['dist/**', 'node_modules/**', 'bench/results/**', '.data/**', 'coverage/**', 'examples/**', 'eslint.config.js'],
  },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: {
        project: ['./tsconfig.test.json', './src/api/panel/client/tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true, requireDefaultForNonUnion: false },
      ],
      '@typescript-eslint/await-thenable': 'error',
      // One blank line between steps is a paragraph break; more is a gap a reader stops at.
      'no-multiple-empty-lines': ['error', { max: 1, maxBOF: 0, maxEOF: 0 }],
    },
  },
  {
    // A function longer than a screenful or three hides its steps; split it into named ones.
    files: ['src/**/*.ts'],
    ignores: [
      // The simulator's managedDevice property table is data, long by nature.
      'src/simulator/properties.ts',
    ],
    rules: {
      'max-lines-per-function': ['error', { max: 150, skipBlankLines: true, skipComments: true }],
    },
  },
);
