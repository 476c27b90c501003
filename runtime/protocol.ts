/**
 * What the server's island renderer and the browser's island runtime agree on: the
 * comment markers around each island, the id of the props script, and how a signal
 * prop is written. Shared by both sides so they cannot drift apart.
 * @module
 */

/** A start marker reads `<!--island:Name:id-->`; the id indexes the props array. */
export const ISLAND_START = "island:";

/** An end marker reads `<!--/island:id-->`. */
export const ISLAND_END = "/island:";

/** Id of the one `<script type="application/json">` holding every island's props. */
export const PROPS_SCRIPT_ID = "__islands";

/** A signal prop is serialized as `{"$signal": value}` and revived as a signal. */
export const SIGNAL_KEY = "$signal";

/** Attribute set on an island's root element once it is hydrated (browser tests wait for it). */
export const READY_ATTRIBUTE = "data-ready";
