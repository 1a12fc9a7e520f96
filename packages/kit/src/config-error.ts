/** A configuration problem found at start. The message names every offending variable or field. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}
