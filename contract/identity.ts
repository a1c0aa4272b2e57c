/**
 * @module identity
 * The identity rules of the wire contract: what a serial number, a command name and a message id may
 * be. A serial is an exact, case-sensitive identity everywhere (topics, tokens, SQL, Redis).
 */

/** A machine's `serial_no`: 1-64 of A-Z a-z 0-9 _ -. */
export const SERIAL_NO = /^[A-Za-z0-9_-]{1,64}$/;

/** A command name (`dispense`, …): 1-64 of A-Z a-z 0-9 _ . : -. */
export const COMMAND_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

/** A command's `message_id`: 1-64 of A-Z a-z 0-9 _ . : -. */
export const MESSAGE_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
