// Types of now.mjs: the same as now.js's (see now.d.ts).
export * from './now.js';
