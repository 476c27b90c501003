/**
 * The island bundle's entry point: registers every island of islands/_manifest.ts and
 * hydrates the page's islands. `deno bundle --platform browser` builds it (bundle.ts).
 * @module
 */
import { islands } from "./_manifest.ts";
import { reviveIslands } from "../runtime/client/revive.ts";

reviveIslands(islands);
