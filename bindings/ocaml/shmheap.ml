(* The OCaml half of the binding: externals over shmheap_stubs.c, plus the
   bookkeeping that emptying needs (which arrays a scope or a builder handed
   out). shmheap.mli is the contract; shmheap_stubs.c explains the pin. *)

open Bigarray

type code =
  | EINVALID
  | EDEADLINE
  | ENOTFOUND
  | EEXISTS
  | EPERMISSION
  | EEXHAUSTED
  | EPRECONDITION
  | EABORTED
  | EINTERNAL
  | EUNAVAILABLE
  | EDATALOSS

exception Error of code * string

let () = Callback.register_exception "shmheap.error" (Error (EINTERNAL, ""))

let string_of_code = function
  | EINVALID -> "EINVALID"
  | EDEADLINE -> "EDEADLINE"
  | ENOTFOUND -> "ENOTFOUND"
  | EEXISTS -> "EEXISTS"
  | EPERMISSION -> "EPERMISSION"
  | EEXHAUSTED -> "EEXHAUSTED"
  | EPRECONDITION -> "EPRECONDITION"
  | EABORTED -> "EABORTED"
  | EINTERNAL -> "EINTERNAL"
  | EUNAVAILABLE -> "EUNAVAILABLE"
  | EDATALOSS -> "EDATALOSS"

let () =
  Printexc.register_printer (function
    | Error (code, message) ->
        Some (Printf.sprintf "Shmheap.Error (%s, %S)" (string_of_code code)
                message)
    | _ -> None)

external init : unit -> unit = "shm_ml_init"

let () = init ()

type t

type options = {
  heap_bytes : int;
  table_slots_log2 : int;
  max_sessions : int;
  chunk_bytes : int;
  min_available_bytes : int;
  seed : int64;
  keep_keys : bool;
  checksums : bool;
}

external default_options : unit -> options = "shm_ml_default_options"
external create_ : options -> t = "shm_ml_create"
external create_named_ : string -> options -> t = "shm_ml_create_named"
external open_named : string -> t = "shm_ml_open_named"
external unlink_named : string -> unit = "shm_ml_unlink_named"
external create_file_ : string -> options -> t = "shm_ml_create_file"
external open_file : string -> t = "shm_ml_open_file"
external close : t -> unit = "shm_ml_close"
external hash : t -> string -> int64 = "shm_ml_hash"

let opts = function Some o -> o | None -> default_options ()
let create ?options () = create_ (opts options)
let create_named ?options name = create_named_ name (opts options)
let create_file ?options path = create_file_ path (opts options)

(* Keys reach the stubs as their bytes and [None], or [Some hash]. *)
external add_ :
  t -> string -> int64 option -> ('a, 'b, 'c) Genarray.t -> bool -> bool
  = "shm_ml_add"

external remove_ : t -> string -> int64 option -> bool = "shm_ml_remove"
external mem_ : t -> string -> int64 option -> bool = "shm_ml_mem"

external move_ :
  t -> string -> int64 option -> string -> int64 option -> unit
  = "shm_ml_move"

external get_ :
  t ->
  string ->
  int64 option ->
  ('a, 'b) kind ->
  'c layout ->
  ('a, 'b, 'c) Genarray.t option = "shm_ml_get"

external release : ('a, 'b, 'c) Genarray.t -> unit = "shm_ml_release"

let add t key a = add_ t key None a false
let replace t key a = add_ t key None a true
let remove t key = remove_ t key None
let mem t key = mem_ t key None
let move t from to_ = move_ t from None to_ None
let get t key kind layout = get_ t key None kind layout

type builder_handle

type ('a, 'b, 'c) builder = {
  handle : builder_handle;
  mutable data : ('a, 'b, 'c) Genarray.t option;
}

external reserve_ :
  t ->
  string ->
  int64 option ->
  ('a, 'b) kind ->
  'c layout ->
  int array ->
  builder_handle = "shm_ml_reserve_byte" "shm_ml_reserve"

external builder_data_ : builder_handle -> ('a, 'b, 'c) Genarray.t
  = "shm_ml_builder_data"

external publish_ : builder_handle -> bool = "shm_ml_publish"
external discard_ : builder_handle -> unit = "shm_ml_discard"

let reserve_key t key hash kind layout dims =
  { handle = reserve_ t key hash kind layout dims; data = None }

let reserve t key kind layout dims = reserve_key t key None kind layout dims

let builder_data b =
  match b.data with
  | Some a -> a
  | None ->
      let a = builder_data_ b.handle in
      b.data <- Some a;
      a

(* Empties builder_data's array; builder_data then asks the (finished)
   builder again, which raises. *)
let empty_data b =
  Option.iter release b.data;
  b.data <- None

let publish b =
  empty_data b;
  publish_ b.handle

let discard b =
  empty_data b;
  discard_ b.handle

type reader_handle

(* The arrays a scope handed out, held weakly: the ones still reachable at
   its end are emptied there, while the ones dropped during it die young
   (a minor collection finalises them) instead of being kept, and
   promoted, until the end. *)
type reader = {
  scope : reader_handle;
  mutable found : Obj.t Weak.t;
  mutable count : int;
}

external read_begin : t -> reader_handle = "shm_ml_read_begin"

(* Drops the scope's own share of its pin: true if arrays still hold it. *)
external read_end : reader_handle -> bool = "shm_ml_read_end"

external find_ :
  reader_handle ->
  string ->
  int64 option ->
  ('a, 'b) kind ->
  'c layout ->
  ('a, 'b, 'c) Genarray.t option = "shm_ml_find"

external release_any : Obj.t -> unit = "shm_ml_release"

let no_arrays = Weak.create 0

let end_scope r =
  for i = 0 to r.count - 1 do
    Option.iter release_any (Weak.get r.found i)
  done;
  r.found <- no_arrays;
  r.count <- 0;
  (* Arrays derived from the ones just emptied still hold the pin; a minor
     collection finalises those already dropped (young ones, the usual
     case), so the pin goes now rather than at some later collection. *)
  if read_end r.scope then Gc.minor ()

let with_read t f =
  let r = { scope = read_begin t; found = no_arrays; count = 0 } in
  Fun.protect ~finally:(fun () -> end_scope r) (fun () -> f r)

let remember r a =
  if r.count = Weak.length r.found then begin
    let bigger = Weak.create (max 8 (2 * r.count)) in
    Weak.blit r.found 0 bigger 0 r.count;
    r.found <- bigger
  end;
  Weak.set r.found r.count (Some (Obj.repr a));
  r.count <- r.count + 1

let find_key r key hash kind layout =
  match find_ r.scope key hash kind layout with
  | Some a as found ->
      remember r a;
      found
  | None -> None

let find r key kind layout = find_key r key None kind layout

type gc_report = {
  ran : bool;
  bytes_before : int;
  bytes_after : int;
  blobs_moved : int;
  bytes_moved : int;
  live_blobs : int;
  tombstones_cleared : int;
  seconds : float;
  handshake_seconds : float;
}

(* 0 asks the C ABI for its default deadline. *)
external collect_ : t -> int -> gc_report = "shm_ml_collect"
external maybe_collect_ : t -> float -> gc_report = "shm_ml_maybe_collect"

let collect ?(deadline_ms = 0) t = collect_ t deadline_ms

(* shmheap::Heap::kGentle. *)
let maybe_collect ?(overhead = 2.0) t = maybe_collect_ t overhead

type stats = {
  table_slots : int;
  table_used : int;
  table_tombstones : int;
  live_blobs : int;
  heap_capacity : int;
  heap_top : int;
  live_bytes : int;
  dead_bytes : int;
  sessions : int;
  collections : int;
}

external stats : t -> stats = "shm_ml_stats"
external verify : t -> unit = "shm_ml_verify"

module Hashed = struct
  let add t hash key a = add_ t key (Some hash) a false
  let replace t hash key a = add_ t key (Some hash) a true
  let remove t hash key = remove_ t key (Some hash)
  let mem t hash key = mem_ t key (Some hash)

  let move t (from_hash, from) (to_hash, to_) =
    move_ t from (Some from_hash) to_ (Some to_hash)

  let reserve t hash key kind layout dims =
    reserve_key t key (Some hash) kind layout dims

  let get t hash key kind layout = get_ t key (Some hash) kind layout
  let find r hash key kind layout = find_key r key (Some hash) kind layout
end

external pins : t -> int = "shm_ml_pins"
external is_pinned : ('a, 'b, 'c) Genarray.t -> bool = "shm_ml_is_pinned"
external mapping : t -> nativeint * int = "shm_ml_mapping"
external address : ('a, 'b, 'c) Genarray.t -> nativeint = "shm_ml_address"
