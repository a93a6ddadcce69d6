(** Shmheap: Bigarrays in shared memory, published under keys by one
    process and read in place, with no copy and no [Marshal], by every
    process that maps the heap.

    {[
      let heap = Shmheap.create () in
      match Unix.fork () with
      | 0 ->
          let m = Bigarray.Genarray.create Bigarray.float64 Bigarray.c_layout [| 1000; 1000 |] in
          Bigarray.Genarray.fill m 1.0;
          ignore (Shmheap.add heap "matrix" m : bool);
          exit 0
      | pid ->
          ignore (Unix.waitpid [] pid);
          match Shmheap.get heap "matrix" Bigarray.float64 Bigarray.c_layout with
          | Some m -> Printf.printf "%g\n" (Bigarray.Genarray.get m [| 999; 999 |])
          | None -> print_endline "absent"
    ]}

    {2 Values}

    A value is a Bigarray of any of the 13 kinds (Bigarray's kinds map one
    to one onto shmheap's: [int] and [nativeint] are 64-bit words, [char]
    one byte, [complex32] 8 bytes), in C or Fortran layout, with 0 to 16
    dimensions. {!add} copies an array in (write-once); {!reserve},
    {!builder_data} and {!publish} build one in place; {!get} returns a
    Bigarray whose data {e is} the stored blob: no copy. [get] checks the
    kind and layout you ask for against what is stored: a mismatch raises
    [Error (EINVALID, _)], it is never reinterpreted.

    A stored value never changes. Arrays from {!get} and {!find} alias
    shared memory that other processes read: writing into them is a
    contract violation (other processes see the write; a checksummed heap
    reports it in {!verify}).

    {2 The pin}

    While an array from {!get} (or {!find}, {!builder_data}) lives, no
    collection moves or frees its data: the array pins the heap. The pin is
    held by the array and by everything derived from it with
    [Bigarray.Genarray.sub_left], [slice_left], [reshape], [change_layout]
    (and the [Array1]/[Array2]/[Array3] forms), and dropped when the last of
    them is unreachable and finalised by the GC, or when {!release} empties
    them. Pinning is per process: a collection waits until no process is
    pinned ({!collect}). So a process that calls [get] in a loop should
    drop its pins promptly: {!with_read} ends a scope's pin when it
    returns, {!release} drops one array's now. {!collect} from a pinned
    process is refused with a message that counts this process's pins;
    [Gc.full_major ()] finalises unreachable arrays.

    An emptied array (by {!release}, the end of {!with_read}, {!publish})
    has all its dimensions set to 0, so every access raises
    [Invalid_argument]; a 0-dimensional one reads a zeroed scratch word.
    Arrays derived from it before it was emptied keep their own pin.

    {2 Processes, threads, fork}

    A heap may be used from any thread (calls take OCaml's runtime lock;
    {!collect}, {!maybe_collect} and {!verify} release it while they run).
    A heap from {!create} is shared with children forked after it; a child
    uses it as it is (it joins as a session of its own). Arrays inherited
    across [fork] stay readable in the child only while the parent keeps
    them pinned: get them again in the child.

    {2 Errors}

    Every failure raises [Error (code, message)]; the codes are the C ABI's
    ([capi/shmheap_c.h]) and the message names the call, the heap and the
    key. Absence is not an error: {!get}, {!find} return [None], {!remove}
    [false]. Each function lists the codes it raises. [Invalid_argument]
    and [Out_of_memory] come from the OCaml runtime as usual. *)

type code =
  | EINVALID  (** bad dims, kind, layout, size, name or options; kind or
                  layout mismatch on {!get} *)
  | EDEADLINE  (** {!collect}: the world did not stop in time *)
  | ENOTFOUND  (** no such heap or file; {!move}'s source absent *)
  | EEXISTS
      (** another key with the same 64-bit hash; {!move}'s target exists;
          the name or file to create exists *)
  | EPERMISSION  (** the heap belongs to another uid *)
  | EEXHAUSTED  (** table, heap or backing store full; max_sessions *)
  | EPRECONDITION
      (** not a heap or another format; {!collect} while this process is
          pinned; a closed heap; a builder used after publish; a reader
          used after its scope *)
  | EABORTED  (** {!move}'s source changed under it *)
  | EINTERNAL  (** a bug, or memory for a handle ran out *)
  | EUNAVAILABLE  (** a named heap is still being created *)
  | EDATALOSS  (** damaged heap, or a collector died mid-way *)

exception Error of code * string

val string_of_code : code -> string
(** ["EINVALID"], ... *)

(** {1 Heaps} *)

type t
(** A heap, attached in this process. *)

type options = {
  heap_bytes : int;  (** capacity for blobs; reserved, not committed *)
  table_slots_log2 : int;  (** the table has [2^n] slots (4..32) *)
  max_sessions : int;  (** processes attached at once *)
  chunk_bytes : int;  (** allocation chunk per process (4 KiB multiple) *)
  min_available_bytes : int;  (** memory left free when the heap grows *)
  seed : int64;  (** hash seed; [0L] picks a random one *)
  keep_keys : bool;  (** store keys, so 64-bit collisions are detected *)
  checksums : bool;  (** checksum every blob for {!verify} *)
}

val default_options : unit -> options
(** The library's defaults (shmheap::Options). *)

val create : ?options:options -> unit -> t
(** An anonymous heap (memfd), shared with children forked afterwards.
    Raises [EINVALID] (options), [EEXHAUSTED] (memory). *)

val create_named : ?options:options -> string -> t
(** A heap in /dev/shm under [name], mode 0600, created exclusively.
    Raises [EINVALID], [EEXISTS], [EEXHAUSTED]. *)

val open_named : string -> t
(** Attaches to a named heap. Raises [EINVALID], [ENOTFOUND],
    [EPERMISSION], [EPRECONDITION] (not a heap, other format),
    [EUNAVAILABLE], [EDATALOSS], [EEXHAUSTED] (max_sessions). *)

val unlink_named : string -> unit
(** Removes the name; attached processes keep the heap. Raises [EINVALID],
    [ENOTFOUND]. *)

val create_file : ?options:options -> string -> t
(** A heap over a regular file (created 0600, exclusively); nothing in it
    depends on its address, so {!open_file} maps it straight back. Raises as
    {!create_named}. *)

val open_file : string -> t
(** Raises as {!open_named}. *)

val close : t -> unit
(** Detaches [t]: every later call on it raises [EPRECONDITION]. The heap
    itself is left when the last array and builder of [t] in this process
    are gone, so arrays from {!get} stay readable after [close]. Closing
    twice does nothing. An unreachable [t] is closed by the GC. *)

val hash : t -> string -> int64
(** The heap's 64-bit hash of a key (never [0L]): what the [Hashed]
    functions take. Raises [EPRECONDITION] (closed). *)

(** {1 Writing} *)

val add : t -> string -> ('a, 'b, 'c) Bigarray.Genarray.t -> bool
(** [add t key a] copies [a] (its kind, layout, dims and elements) into
    the heap under [key], write-once: [true] if this call published it,
    [false] if [key] already had a value (left unchanged). Raises
    [EINVALID], [EEXISTS] (another key with the same 64-bit hash),
    [EEXHAUSTED], [EDATALOSS], [EPRECONDITION] (closed). *)

val replace : t -> string -> ('a, 'b, 'c) Bigarray.Genarray.t -> bool
(** Publishes [a] whether or not [key] had a value: [true] if it replaced
    one (whose bytes become dead). Arrays already got from the old value
    keep reading it. Raises as {!add}. *)

val remove : t -> string -> bool
(** Unlinks [key]'s value: [true] if there was one. Raises [EEXHAUSTED]
    (max_sessions), [EDATALOSS], [EPRECONDITION] (closed). *)

val mem : t -> string -> bool
(** Whether [key] has a value (reads the table only). Raises
    [EPRECONDITION] (closed). *)

val move : t -> string -> string -> unit
(** [move t from to_] moves [from]'s value to [to_], which must be absent.
    Raises [ENOTFOUND] ([from] absent), [EEXISTS] ([to_] present),
    [EABORTED] ([from] changed meanwhile; [to_] holds the moved value), and
    {!add}'s. *)

type ('a, 'b, 'c) builder
(** An array reserved in the heap, filled in place, then published. While
    it is unpublished it pins the heap. *)

val reserve :
  t ->
  string ->
  ('a, 'b) Bigarray.kind ->
  'c Bigarray.layout ->
  int array ->
  ('a, 'b, 'c) builder
(** [reserve t key kind layout dims] reserves a blob for [key]. Raises
    [EINVALID] (dims), [EEXHAUSTED], [EDATALOSS], [EPRECONDITION]
    (closed). *)

val builder_data : ('a, 'b, 'c) builder -> ('a, 'b, 'c) Bigarray.Genarray.t
(** The reserved blob as a Bigarray, to fill in place (the same array on
    every call). {!publish} empties it. Raises [EPRECONDITION] (published
    or discarded). *)

val publish : ('a, 'b, 'c) builder -> bool
(** Empties {!builder_data}'s array and publishes the blob as {!add} does:
    [true] if this call published it. The builder is finished whatever
    happens. Raises [EEXISTS], [EEXHAUSTED], [EPRECONDITION] (already
    published or discarded). *)

val discard : ('a, 'b, 'c) builder -> unit
(** Drops an unpublished builder (its bytes become dead) and empties its
    array; does nothing on a finished one. An unreachable builder is
    discarded by the GC. *)

(** {1 Reading} *)

val get :
  t ->
  string ->
  ('a, 'b) Bigarray.kind ->
  'c Bigarray.layout ->
  ('a, 'b, 'c) Bigarray.Genarray.t option
(** [get t key kind layout] is [key]'s value as a Bigarray over the blob in
    shared memory (zero-copy), pinning the heap until it and every array
    derived from it are unreachable or released; [None] if [key] is absent.
    Waits while another process collects. Raises [EINVALID] when the value
    is not of [kind] in [layout] (the message says what it is),
    [EDATALOSS], [EEXHAUSTED] (max_sessions), [EPRECONDITION] (closed). *)

val release : ('a, 'b, 'c) Bigarray.Genarray.t -> unit
(** Empties an array from {!get}, {!find} or {!builder_data} (or derived
    from one) and drops its share of the pin now. Arrays derived from it
    keep theirs. Doing it twice does nothing. Raises [Invalid_argument] for
    an array that did not come from this library. *)

type reader
(** A read scope: one pin for many lookups, each cheaper than {!get}. *)

val with_read : t -> (reader -> 'a) -> 'a
(** [with_read t f] enters a read scope, runs [f], and ends the scope when
    [f] returns or raises: every array {!find} returned in it is emptied,
    and the scope's pin is dropped then, unless arrays derived from those
    (sub-arrays, slices) are still reachable: they keep it until they are
    finalised ([with_read] runs a minor collection first, which finalises
    those already dropped). Waits while another process collects. Raises
    [EDATALOSS], [EEXHAUSTED], [EPRECONDITION] (closed). *)

val find :
  reader ->
  string ->
  ('a, 'b) Bigarray.kind ->
  'c Bigarray.layout ->
  ('a, 'b, 'c) Bigarray.Genarray.t option
(** Like {!get}, inside a scope: no locked instruction, no message on a
    miss. The array is valid until the scope ends (then emptied). Raises
    [EINVALID] (mismatch), [EPRECONDITION] (the scope has ended). *)

(** {1 Collection} *)

type gc_report = {
  ran : bool;  (** false: nothing to do, or another process collected *)
  bytes_before : int;
  bytes_after : int;
  blobs_moved : int;
  bytes_moved : int;
  live_blobs : int;
  tombstones_cleared : int;
  seconds : float;
  handshake_seconds : float;  (** waiting for every process to unpin *)
}

val collect : ?deadline_ms:int -> t -> gc_report
(** Compacts the heap in place. Waits (up to [deadline_ms], default 10 s)
    until no process is pinned; sessions that try to pin meanwhile wait for
    it. Raises [EPRECONDITION] when this process itself is pinned (the
    message counts its arrays, scopes and builders and says how to drop
    them), [EDEADLINE] (some process stayed pinned; nothing changed),
    [EDATALOSS]. *)

val maybe_collect : ?overhead:float -> t -> gc_report
(** Collects when used bytes reach [overhead] (default 2.0,
    shmheap::Heap::kGentle) times the live bytes; [ran = false] otherwise.
    Raises [EINVALID] (a negative or NaN overhead), and as {!collect}. *)

type stats = {
  table_slots : int;
  table_used : int;
  table_tombstones : int;
  live_blobs : int;
  heap_capacity : int;
  heap_top : int;
  live_bytes : int;
  dead_bytes : int;
  sessions : int;  (** attached live processes *)
  collections : int;
}

val stats : t -> stats
(** Counters over every process (reads /proc per session: not for hot
    loops). Raises [EPRECONDITION] (closed). *)

val verify : t -> unit
(** fsck of the whole heap (run it while no process writes). Raises
    [EDATALOSS] naming the first bad offset, [EPRECONDITION] (closed). *)

(** {1 Precomputed hashes}

    The same operations with the caller's 64-bit hash instead of the heap's
    (Hack passes MD5 prefixes). The string is the key's bytes, stored and
    compared so that collisions are detected; [""] trusts the hash alone. *)
module Hashed : sig
  val add : t -> int64 -> string -> ('a, 'b, 'c) Bigarray.Genarray.t -> bool
  val replace :
    t -> int64 -> string -> ('a, 'b, 'c) Bigarray.Genarray.t -> bool
  val remove : t -> int64 -> string -> bool
  val mem : t -> int64 -> string -> bool
  val move : t -> int64 * string -> int64 * string -> unit
  val reserve :
    t ->
    int64 ->
    string ->
    ('a, 'b) Bigarray.kind ->
    'c Bigarray.layout ->
    int array ->
    ('a, 'b, 'c) builder
  val get :
    t ->
    int64 ->
    string ->
    ('a, 'b) Bigarray.kind ->
    'c Bigarray.layout ->
    ('a, 'b, 'c) Bigarray.Genarray.t option
  val find :
    reader ->
    int64 ->
    string ->
    ('a, 'b) Bigarray.kind ->
    'c Bigarray.layout ->
    ('a, 'b, 'c) Bigarray.Genarray.t option
end

(** {1 Introspection (tests, tools)} *)

val pins : t -> int
(** This process's pins on [t] not yet dropped: arrays from {!get} (with
    their derived arrays, one each), scopes and {!builder_data} arrays
    still held, unpublished builders. *)

val is_pinned : ('a, 'b, 'c) Bigarray.Genarray.t -> bool
(** Whether the array holds a share of a pin (false once emptied, and for
    arrays from elsewhere). *)

val mapping : t -> nativeint * int
(** The start address and length of the heap's mapping in this process. *)

val address : ('a, 'b, 'c) Bigarray.Genarray.t -> nativeint
(** The address of an array's data: with {!mapping}, shows that {!get} is
    zero-copy. *)
