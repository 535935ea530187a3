// `cnctl`: shows what the cloud-network daemon learned, through its local REST API (SPEC §2, §7).
// citty defines the commands and renders --help; the dispatch is ours so that global options
// work anywhere on the line and usage errors exit 2 in one line, as cloud-network's do.
import { defineCommand, parseArgs, type CommandDef } from 'citty';
import { ApiClient, apiUrl, CnctlError, EXIT } from '../cnctl/client.js';
import { healthView, planNotices, planView } from '../cnctl/health.js';
import { networkView } from '../cnctl/network.js';
import { fieldsView, projectView, signatureView, sshKeysView } from '../cnctl/show.js';
import { systemView } from '../cnctl/system.js';
import type { ProviderName } from '../model.js';
import { VERSION } from '../version.js';
import { printUsage } from './usage.js';

const globalArgs = {
  json: { type: 'boolean', description: 'print the JSON document the API answered, unchanged, instead of the table' },
  url: {
    type: 'string',
    description: 'API base URL (default: Listen, or Address and Port, from the cloud-network config; http://127.0.0.1:5209)',
    valueHint: 'URL',
  },
} as const;

type Command = CommandDef<typeof globalArgs>;
interface Context {
  api: ApiClient;
  json: boolean;
}
/** What a command prints on stdout. */
type Action = (context: Context) => Promise<string>;

function command(name: string, description: string, action?: Action, subCommands?: Record<string, Command>): Command {
  return defineCommand({
    meta: { name, description },
    args: globalArgs,
    ...(action ? { run: ({ data }: { data?: Context }) => action(data!) } : {}),
    ...(subCommands ? { subCommands } : {}),
  });
}

const asJson = (document: unknown) => `${JSON.stringify(document, null, 2)}\n`;

const CLOUD_NAMES: Record<ProviderName, string> = { ec2: 'EC2', azure: 'Azure', gcp: 'GCP' };

async function requireCloud(api: ApiClient, cloud: ProviderName, what: string): Promise<void> {
  const provider = await api.provider();
  if (provider !== cloud) throw new CnctlError(`${what} is available on ${CLOUD_NAMES[cloud]} only; this is ${CLOUD_NAMES[provider]}`);
}

/** A view of the system document, whose shape depends on the cloud. */
const systemAction =
  (view: (provider: ProviderName, system: unknown) => string): Action =>
  async ({ api, json }) => {
    const [provider, system] = await Promise.all([api.provider(), api.get('/api/cloud/system')]);
    return json ? asJson(system) : view(provider, system);
  };

const identity = (name: string, description: string) =>
  command(name, description, async ({ api, json }) => {
    await requireCloud(api, 'ec2', `show ${name}`);
    const document = await api.get(`/api/cloud/dynamicinstanceidentity/${name}`);
    return json ? asJson(document) : name === 'document' ? fieldsView(document) : signatureView(name, document);
  });

const root = command('cnctl', 'Shows what cloud-network learned from the instance metadata', undefined, {
  status: command(
    'status',
    'Daemon health: provider, managed interfaces, last refresh and error, objects applied',
    async ({ api, json }) => {
      const status = await api.daemonStatus();
      return json ? asJson(status) : healthView(status);
    },
    {
      system: command('system', "The instance's facts from the provider's system metadata", systemAction(systemView)),
      network: command('network', 'One block per network interface from the network metadata', async ({ api, json }) => {
        const [provider, network] = await Promise.all([api.provider(), api.get('/api/cloud/network')]);
        return json ? asJson(network) : networkView(provider, network, await api.daemonStatus());
      }),
    },
  ),
  plan: command('plan', 'The ip -batch script the next reconcile would run', async ({ api, json }) => {
    const plan = await api.get('/api/v1/plan');
    if (json) return asJson(plan);
    for (const notice of planNotices(plan)) process.stderr.write(`warning: ${notice}\n`);
    return planView(plan);
  }),
  show: command('show', 'SSH keys, credentials, identity documents, project', undefined, {
    'ssh-keys': command('ssh-keys', 'The SSH public keys in the instance metadata', systemAction(sshKeysView)),
    credentials: command('credentials', 'EC2 IAM role credentials, secret key and token redacted', async ({ api, json }) => {
      await requireCloud(api, 'ec2', 'show credentials');
      const credentials = await api.get('/api/cloud/credentials');
      return json ? asJson(credentials) : fieldsView(credentials);
    }),
    document: identity('document', 'EC2 instance identity document'),
    pkcs7: identity('pkcs7', 'EC2 instance identity PKCS #7 signature'),
    signature: identity('signature', 'EC2 instance identity signature'),
    rsa2048: identity('rsa2048', 'EC2 instance identity RSA-2048 PKCS #7 signature'),
    project: command('project', 'GCP project of the instance', async ({ api, json }) => {
      await requireCloud(api, 'gcp', 'show project');
      const system = await api.get('/api/cloud/system');
      return json ? asJson(system) : projectView(system);
    }),
  }),
});

/** Commands here are plain objects, never lazy loaders, so their subcommands can be read directly. */
const childrenOf = (parent: Command) => (parent.subCommands ?? {}) as Record<string, Command>;

/** Follows the command words from the root; `path` names the command reached, `rest` is what did not match. */
function resolve(words: string[]): { target: Command; path: string[]; rest: string[] } {
  let target = root;
  const path = ['cnctl'];
  for (const word of words) {
    const child = childrenOf(target)[word];
    if (!child) break;
    target = child;
    path.push(word);
  }
  return { target, path, rest: words.slice(path.length - 1) };
}

async function main(argv: string[]): Promise<number> {
  const options = parseArgs<typeof globalArgs>(argv, globalArgs);
  const { target, path, rest } = resolve(options._);
  const name = path.join(' ');
  if (argv.includes('--help') || argv.includes('-h')) {
    await printUsage(target, { meta: { name: path.slice(0, -1).join(' '), version: VERSION } });
    return EXIT.ok;
  }
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
    process.stdout.write(`${VERSION}\n`);
    return EXIT.ok;
  }
  try {
    const unknown = Object.keys(options).filter((key) => key !== '_' && !(key in globalArgs));
    if (unknown.length > 0) throw new CnctlError(`unknown option --${unknown[0]}; see ${name} --help`, EXIT.usage);
    const subcommands = Object.keys(childrenOf(target)).join(', ');
    if (rest.length > 0) {
      const what = subcommands ? `unknown command ${JSON.stringify(rest[0])} for ${name}: use ${subcommands}` : `unexpected argument ${JSON.stringify(rest[0])}`;
      throw new CnctlError(`${what}; see ${name} --help`, EXIT.usage);
    }
    if (!target.run) throw new CnctlError(`${name} needs a command: ${subcommands}; see ${name} --help`, EXIT.usage);
    if (options.url === '') throw new CnctlError('--url needs a value such as http://127.0.0.1:5209', EXIT.usage);
    const context: Context = { api: new ApiClient(apiUrl(options.url, process.env)), json: options.json === true };
    process.stdout.write((await target.run({ rawArgs: argv, args: options, cmd: target, data: context })) as string);
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CnctlError) {
      process.stderr.write(`error: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`error: unexpected failure: ${(error as Error).stack ?? String(error)}\n`);
    return EXIT.failure;
  }
}

process.exitCode = await main(process.argv.slice(2));
