#!/usr/bin/env node
// Lists exports of src/ and test/ that nothing imports (npm run lint runs it). An export
// counts as used when another file imports or re-exports it by name, when a file imports
// its module whole (`import * as`, `import()`, `typeof import()`), or when one of the
// scripts imports it from dist/. The programs in src/bin/ are entry points.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
const program = ts.createProgram({ rootNames: config.fileNames, options: { ...config.options, noEmit: true } });
const checker = program.getTypeChecker();
const ours = program.getSourceFiles().filter((f) => !f.isDeclarationFile && !f.fileName.includes('/node_modules/'));

const used = new Set(); // symbols
const wholeModules = new Set(); // file names
const original = (symbol) => (symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol);
const moduleFile = (specifier, from) => {
  const resolved = ts.resolveModuleName(specifier, from, config.options, ts.sys).resolvedModule;
  return resolved && !resolved.isExternalLibraryImport ? resolve(resolved.resolvedFileName) : undefined;
};
const markName = (node) => {
  const symbol = checker.getSymbolAtLocation(node);
  if (symbol) used.add(original(symbol));
};

for (const file of ours) {
  const visit = (node) => {
    if (ts.isImportDeclaration(node) && node.importClause) {
      const { name, namedBindings } = node.importClause;
      if (name) markName(name);
      if (namedBindings && ts.isNamespaceImport(namedBindings)) {
        const target = moduleFile(node.moduleSpecifier.text, file.fileName);
        if (target) wholeModules.add(target);
      } else if (namedBindings) for (const element of namedBindings.elements) markName(element.name);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      if (!node.exportClause || ts.isNamespaceExport(node.exportClause)) {
        const target = moduleFile(node.moduleSpecifier.text, file.fileName);
        if (target) wholeModules.add(target);
      } else for (const element of node.exportClause.elements) markName(element.propertyName ?? element.name);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && ts.isStringLiteral(node.arguments[0] ?? {})) {
      const target = moduleFile(node.arguments[0].text, file.fileName);
      if (target) wholeModules.add(target);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      const target = moduleFile(node.argument.literal.text, file.fileName);
      if (target) wholeModules.add(target);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
}

// The scripts import the built modules: `import { a, b } from '../dist/src/x.js'`.
const scriptNames = new Map(); // src file -> names
const walk = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
for (const script of walk(join(root, 'scripts')).filter((f) => f.endsWith('.mjs'))) {
  for (const m of readFileSync(script, 'utf8').matchAll(/import\s*\{([^}]*)\}\s*from\s*'([^']*\/dist\/(src\/[^']*))\.js'/g)) {
    const file = join(root, `${m[3]}.ts`);
    const names = scriptNames.get(file) ?? new Set();
    for (const name of m[1].split(',')) names.add(name.trim().split(/\s+as\s+/)[0]);
    scriptNames.set(file, names);
  }
}

const unused = [];
for (const file of ours) {
  const name = resolve(file.fileName);
  if (name.startsWith(join(root, 'src/bin/')) || wholeModules.has(name)) continue;
  const moduleSymbol = checker.getSymbolAtLocation(file);
  if (!moduleSymbol) continue;
  for (const symbol of checker.getExportsOfModule(moduleSymbol)) {
    if (used.has(original(symbol)) || scriptNames.get(name)?.has(symbol.name)) continue;
    const declaration = symbol.declarations?.[0];
    if (declaration?.getSourceFile() !== file) continue; // re-exported from elsewhere: judged there
    const { line } = file.getLineAndCharacterOfPosition(declaration.getStart());
    unused.push(`${relative(root, name)}:${line + 1}: ${symbol.name}`);
  }
}
if (unused.length > 0) {
  console.error(`exported but imported nowhere (un-export or remove):\n${unused.join('\n')}`);
  process.exit(1);
}
