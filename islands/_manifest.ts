/**
 * Every island, by the name its markers carry, as Fresh's generated manifest lists them.
 * The server wraps these components in markers; the browser bundle hydrates them. Adding
 * an island = adding a PascalCase file in islands/ and a line here.
 * @module
 */
import EventLog from "./EventLog.tsx";
import PipelinesTable from "./PipelinesTable.tsx";
import VramHistory from "./VramHistory.tsx";
import VramStatus from "./VramStatus.tsx";

/** Island name → component. */
export const islands = { EventLog, PipelinesTable, VramHistory, VramStatus };
