// Success replies per op (docs/protocol.md §3). docs/asyncapi.json models only the generic
// reply envelope (`ReplyFrame`), not each op's fields, so these are written by hand from the
// protocol's table; everything else the client uses comes from protocol.gen.ts.
import type { Since } from "./protocol.gen.js";

export interface ReplyBase {
  id: number;
  ok: true;
  [key: string]: unknown;
}

export interface QuizQuestion {
  id: string;
  text: string;
  options: Array<{ id: string; label: string }>;
}

export interface AnalysisStartReply extends ReplyBase {
  analysis_id: string;
  channel: string;
  cached?: boolean;
  upload?: { offset: number; max_chunk_bytes: number };
}

export interface ReplyMap {
  ping: ReplyBase & { ts: number };
  "auth.refresh": ReplyBase & { expires_in: number };
  subscribe: ReplyBase & Since & { recovered: boolean };
  unsubscribe: ReplyBase;
  "analysis.start": AnalysisStartReply;
  "upload.status": ReplyBase & { offset: number; size: number };
  "analysis.cancel": ReplyBase;
  "quiz.start": ReplyBase & { quiz_id: string; questions: QuizQuestion[] };
  "quiz.answer": ReplyBase & { answered: number; remaining: number };
  "quiz.submit": ReplyBase & { analysis_id: string; channel: string; cached: boolean };
}
