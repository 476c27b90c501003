/**
 * The dashboard's one tooltip: a focusable host whose `.tip` child shows on hover and on
 * keyboard focus (CSS only: static/base.css). The memory bar uses the same `.tip` beside
 * its bar (`.tip-anchor`), since the bar clips what overflows it.
 * @module
 */
import type { ComponentChildren } from "preact";

/** Props of {@link Tipped}. */
export interface TippedProps {
  /** The host's classes (besides `has-tip`). */
  class: string;
  /** What the tooltip says. */
  tip: string;
  /** The host's accessible name (the tooltip itself is hidden from screen readers). */
  label: string;
  children: ComponentChildren;
}

/** `children` in a focusable span with `tip` as its tooltip. */
export function Tipped({ class: className, tip, label, children }: TippedProps) {
  return (
    <span class={`${className} has-tip`} tabIndex={0} aria-label={label}>
      {children}
      <span class="tip" aria-hidden="true">{tip}</span>
    </span>
  );
}
