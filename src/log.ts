// Logging through consola, always to stderr (stdout carries --dry-run scripts and cnctl
// output). LogFormat=json prints one object per line for journald/log shippers.
import { createConsola, type ConsolaInstance, type LogObject } from 'consola';
import type { LogFormat, LogLevel } from './config.js';

const CONSOLA_LEVELS: Record<LogLevel, number> = { trace: 5, debug: 4, info: 3, warning: 1, error: 0, fatal: 0, panic: 0 };

function message(log: LogObject): string {
  return log.args.map((arg) => (arg instanceof Error ? arg.message : typeof arg === 'string' ? arg : JSON.stringify(arg))).join(' ');
}

export function createLogger(level: LogLevel = 'info', format: LogFormat = 'text'): ConsolaInstance {
  return createConsola({
    level: CONSOLA_LEVELS[level],
    reporters: [
      {
        log(log) {
          const type = log.type === 'warn' ? 'warning' : log.type === 'log' || log.type === 'success' || log.type === 'start' ? 'info' : log.type;
          const line =
            format === 'json'
              ? JSON.stringify({ time: log.date.toISOString(), level: type, msg: message(log) })
              : `${type}: ${message(log)}`;
          process.stderr.write(`${line}\n`);
        },
      },
    ],
  });
}

export function setLogLevel(logger: ConsolaInstance, level: LogLevel): void {
  logger.level = CONSOLA_LEVELS[level];
}

export type Logger = ConsolaInstance;
