/**
 * The registry client's error type.
 *
 * @module
 */
import { StrataError } from "../../errors.js";

/** A registry error with the HTTP status (0 when there was no answer). */
export class RegistryError extends StrataError {
  readonly status: number;
  constructor(code: string, status: number, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = status;
  }
}
