(* A parmap-style parallel map over Bigarrays, built on the heap.

   The input reaches the workers by fork (copy-on-write, nothing sent). The
   output is one blob reserved in the heap before forking: each worker
   fills its slice of it in place through the reserved array, the parent
   publishes it and returns it as a zero-copy array (pinned while it is
   reachable). Nothing is marshalled either way, where parmap sends each
   worker's results back marshalled: that route is timed here too, with a
   sequential run of the same code.

     ./bazelw run //examples/ocaml:parallel_map -- [--workers W] [--n N] *)

open Bigarray

let jobs = ref 0

(* [parallel_map_chunks heap ~workers kind g input] runs
   [g input_slice output_slice] in [workers] forked processes over
   consecutive slices of [input] and of an output array of [kind] and the
   same length, which lives in [heap]. Its key is removed before it is
   returned, so its bytes are reclaimed by the first collection after the
   array is dropped or released. Raises Failure if a worker fails. *)
let parallel_map_chunks (type a b c d) heap ~workers (kind : (c, d) kind)
    (g : (a, b, c_layout) Array1.t -> (c, d, c_layout) Array1.t -> unit)
    (input : (a, b, c_layout) Array1.t) : (c, d, c_layout) Array1.t =
  let n = Array1.dim input in
  incr jobs;
  let key = Printf.sprintf "parallel_map:%d:%d" (Unix.getpid ()) !jobs in
  let builder = Shmheap.reserve heap key kind c_layout [| n |] in
  let out = array1_of_genarray (Shmheap.builder_data builder) in
  let pids =
    List.init workers (fun w ->
        match Unix.fork () with
        | 0 ->
            let lo = n * w / workers and hi = n * (w + 1) / workers in
            let code =
              try
                g (Array1.sub input lo (hi - lo)) (Array1.sub out lo (hi - lo));
                0
              with _ -> 1
            in
            Unix._exit code
        | pid -> pid)
  in
  let ok = List.for_all (fun pid -> snd (Unix.waitpid [] pid) = Unix.WEXITED 0) pids in
  if not ok then (
    Shmheap.discard builder;
    failwith "parallel_map: a worker failed");
  ignore (Shmheap.publish builder : bool);
  match Shmheap.get heap key kind c_layout with
  | Some result ->
      ignore (Shmheap.remove heap key : bool);
      array1_of_genarray result
  | None -> failwith "parallel_map: the result vanished"

(* parmap's elementwise form, on top. *)
let parallel_map heap ~workers kind f input =
  parallel_map_chunks heap ~workers kind
    (fun i o ->
      for j = 0 to Array1.dim i - 1 do
        Array1.unsafe_set o j (f (Array1.unsafe_get i j))
      done)
    input

(* The same with each worker's results marshalled back over a pipe. *)
let marshal_map_chunks (type a b c d) ~workers (kind : (c, d) kind)
    (g : (a, b, c_layout) Array1.t -> (c, d, c_layout) Array1.t -> unit)
    (input : (a, b, c_layout) Array1.t) : (c, d, c_layout) Array1.t =
  let n = Array1.dim input in
  let slice w = (n * w / workers, n * (w + 1) / workers) in
  let children =
    List.init workers (fun w ->
        let rd, wr = Unix.pipe () in
        match Unix.fork () with
        | 0 ->
            Unix.close rd;
            let lo, hi = slice w in
            let part = Array1.create kind c_layout (hi - lo) in
            g (Array1.sub input lo (hi - lo)) part;
            let oc = Unix.out_channel_of_descr wr in
            Marshal.to_channel oc part [];
            close_out oc;
            Unix._exit 0
        | pid ->
            Unix.close wr;
            (w, pid, rd))
  in
  let result = Array1.create kind c_layout n in
  List.iter
    (fun (w, pid, rd) ->
      let ic = Unix.in_channel_of_descr rd in
      let (part : (c, d, c_layout) Array1.t) = Marshal.from_channel ic in
      close_in ic;
      ignore (Unix.waitpid [] pid : int * Unix.process_status);
      let lo, hi = slice w in
      Array1.blit part (Array1.sub result lo (hi - lo)))
    children;
  result

type f64 = (float, float64_elt, c_layout) Array1.t

let f x = (sqrt x *. sin x) +. (x /. 3.)

(* A monomorphic chunk function: the compiler inlines the accesses. *)
let chunk (i : f64) (o : f64) =
  for j = 0 to Array1.dim i - 1 do
    Array1.unsafe_set o j (f (Array1.unsafe_get i j))
  done

let () =
  let workers = ref 4 and n = ref 4_000_000 in
  Arg.parse
    [
      ("--workers", Arg.Set_int workers, "W  forked workers (4)");
      ("--n", Arg.Set_int n, "N  elements (4000000)");
    ]
    (fun a -> raise (Arg.Bad a))
    "parallel_map: a parmap-style map over Bigarrays on the heap";
  let workers = !workers and n = !n in
  let heap =
    Shmheap.create
      ~options:{ (Shmheap.default_options ()) with heap_bytes = (32 * n) + (64 lsl 20) }
      ()
  in
  let input = Array1.init float64 c_layout n float_of_int in
  let time g =
    let t0 = Unix.gettimeofday () in
    let r = g () in
    (r, (Unix.gettimeofday () -. t0) *. 1e3)
  in
  let sequential, t_seq =
    time (fun () ->
        let r = Array1.create float64 c_layout n in
        chunk input r;
        r)
  in
  let mapped, t_heap = time (fun () -> parallel_map_chunks heap ~workers float64 chunk input) in
  let marshalled, t_marshal = time (fun () -> marshal_map_chunks ~workers float64 chunk input) in
  let elementwise = parallel_map heap ~workers float64 f input in
  let agree = mapped = sequential && marshalled = sequential && elementwise = sequential in
  let base, bytes = Shmheap.mapping heap in
  let p = Shmheap.address (genarray_of_array1 mapped) in
  let in_place = p >= base && Nativeint.(sub p base < of_int bytes) in
  Printf.printf
    "parallel_map of %d float64 with %d workers: %.1f ms with the result on the heap (in place: %b), %.1f ms with results marshalled back, %.1f ms sequential; %s\n"
    n workers t_heap in_place t_marshal t_seq
    (if agree then "results agree" else "RESULTS DIFFER");
  (* Their keys are gone; the pins go with the arrays, then collect
     reclaims the bytes. *)
  Shmheap.release (genarray_of_array1 mapped);
  Shmheap.release (genarray_of_array1 elementwise);
  let r = Shmheap.collect heap in
  Printf.printf "after the results are released, collect frees %d bytes\n"
    (r.bytes_before - r.bytes_after);
  Shmheap.close heap;
  exit (if agree && in_place && r.bytes_before > r.bytes_after then 0 else 1)
