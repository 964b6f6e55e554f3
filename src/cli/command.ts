/** A CLI subcommand: its help text lives with it; main.ts is a plain table of them. */
export interface Command {
  name: string;
  summary: string;
  /** Full help, printed by `sparse-attn <name> --help`. */
  usage: string;
  run(argv: string[]): Promise<number>;
}
