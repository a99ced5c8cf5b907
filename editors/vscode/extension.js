// The oprl VS Code extension: TextMate highlighting comes from package.json; this file starts
// the language server `oprl lsp` when the `oprl` executable can be found.
'use strict';

const path = require('path');
const fs = require('fs');
const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

let client;

/** The executable named by `oprl.server.path`, resolved against the PATH; null when absent. */
function findExecutable(name) {
  if (path.isAbsolute(name) || name.includes(path.sep)) {
    return fs.existsSync(name) ? name : null;
  }
  const extensions = process.platform === 'win32' ? ['.exe', '.cmd', ''] : [''];
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    for (const ext of extensions) {
      const candidate = path.join(dir, name + ext);
      if (dir && fs.existsSync(candidate)) {
        return candidate;
      }
    }
  }
  return null;
}

function activate(context) {
  const configured = vscode.workspace.getConfiguration('oprl').get('server.path') || 'oprl';
  const command = findExecutable(configured);
  if (!command) {
    vscode.window.showInformationMessage(
      `oprl: \`${configured}\` is not on the PATH; highlighting works, diagnostics need \`oprl lsp\`.`);
    return;
  }
  const server = { command, args: ['lsp'] };
  client = new LanguageClient(
    'oprl',
    'oprl language server',
    { run: server, debug: server },
    { documentSelector: [{ scheme: 'file', language: 'oprl' }] },
  );
  context.subscriptions.push(client);
  client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
