(* //bindings/ocaml:bench: a reader receiving a float64 array of 64 B,
   64 KiB and 16 MiB from a writer process, and reading every element, by
   three routes:

     shmheap get   Shmheap.get (zero-copy, pinned), sum, Shmheap.release
                   (also: with_read + find per call, and finds in one
                   with_read around a batch, the hot-loop form);
     Marshal pipe  a forked writer Marshals the array into a pipe without
                   pause; the reader Marshal.from_channel's it and sums;
     map_file      the writer wrote the array to a file once; the reader
                   opens it, Unix.map_file's it (MAP_SHARED, read-only),
                   closes the fd and sums (the mapping goes when the GC
                   finalises it).

   and the writer's side: Shmheap.add of the same sizes. Each figure is the
   median of 15 batches (after a warm-up batch) of calls, a batch sized to
   ~20 ms; every OCaml batch ends with Gc.minor (), timed, so each route
   pays for freeing what it allocated (the Marshal copy, the map_file
   mapping, the shmheap arrays' finalisation).

   The binding's per-call overhead: the same get through the C ABI from C
   (bench_stubs.c), its batches interleaved with the OCaml get's so that
   both see the same load; with --cpp N:CPP_NS:CABI_NS ... (bench_cpp_get,
   which interleaves C++'s Heap::Get with the C ABI's get the same way) the
   overhead over C++ is (OCaml − C ABI) + (C ABI − C++).

   The sums go through four accumulators so that reading is not bound by
   the latency of one chain of float additions. *)

open Bigarray

type f64 = (float, float64_elt, c_layout) Array1.t

let sum (a : f64) =
  let n = Array1.dim a in
  let s0 = ref 0. and s1 = ref 0. and s2 = ref 0. and s3 = ref 0. in
  let i = ref 0 in
  while !i + 3 < n do
    let j = !i in
    s0 := !s0 +. Array1.unsafe_get a j;
    s1 := !s1 +. Array1.unsafe_get a (j + 1);
    s2 := !s2 +. Array1.unsafe_get a (j + 2);
    s3 := !s3 +. Array1.unsafe_get a (j + 3);
    i := j + 4
  done;
  while !i < n do
    s0 := !s0 +. Array1.unsafe_get a !i;
    incr i
  done;
  !s0 +. !s1 +. !s2 +. !s3

let sink = ref 0.

let make n : f64 =
  let a = Array1.create float64 c_layout n in
  for i = 0 to n - 1 do
    a.{i} <- float_of_int (i mod 1000)
  done;
  a

let expected n =
  let s = ref 0. in
  for i = 0 to n - 1 do
    s := !s +. float_of_int (i mod 1000)
  done;
  !s

(* A route times a batch: [calls] calls, in seconds. *)
let ocaml_batch f calls =
  let t0 = Unix.gettimeofday () in
  for _ = 1 to calls do
    f ()
  done;
  Gc.minor ();
  Unix.gettimeofday () -. t0

(* Median seconds per call of each route, batches of ~20 ms (capped at
   [cap] calls), the routes' batches interleaved; [after_batch] runs
   untimed after each round. *)
let measure_routes ?(cap = max_int) ?(after_batch = ignore) routes =
  let calls =
    List.map
      (fun batch ->
        (* Grow a trial batch to >= 1 ms, then scale it to ~20 ms. *)
        let rec calibrate n =
          let dt = batch n in
          if dt >= 1e-3 || n >= cap then (n, dt) else calibrate (n * 10)
        in
        let n, dt = calibrate 1 in
        max 1 (min cap (int_of_float (float_of_int n *. 0.02 /. (dt +. 1e-9)))))
      routes
  in
  let rounds =
    Array.init 16 (fun _ ->
        let r = List.map2 (fun batch n -> batch n /. float_of_int n) routes calls in
        after_batch ();
        r)
  in
  List.mapi
    (fun i _ ->
      let timed = Array.init 15 (fun r -> List.nth rounds.(r + 1) i) in
      Array.sort compare timed;
      timed.(7))
    routes

let measure ?cap ?after_batch f = List.hd (measure_routes ?cap ?after_batch [ ocaml_batch f ])

external c_setup : int -> unit = "bench_c_setup"
external c_get : int -> int -> float = "bench_c_get"

let sizes = [ ("64 B", 8); ("64 KiB", 8192); ("16 MiB", 2 lsl 20) ]

let get_route t key n =
  let want = expected n in
  fun () ->
    match Shmheap.get t key float64 c_layout with
    | Some g ->
        let s = sum (array1_of_genarray g) in
        Shmheap.release g;
        if s <> want then failwith "get: wrong sum";
        sink := !sink +. s
    | None -> failwith "get: absent"

let find_route t key n =
  let want = expected n in
  fun () ->
    Shmheap.with_read t (fun r ->
        match Shmheap.find r key float64 c_layout with
        | Some g ->
            let s = sum (array1_of_genarray g) in
            if s <> want then failwith "find: wrong sum";
            sink := !sink +. s
        | None -> failwith "find: absent")

(* A hot loop: one with_read scope around a whole batch of finds. *)
let scoped_find_batch t key n =
  let want = expected n in
  fun calls ->
    let t0 = Unix.gettimeofday () in
    Shmheap.with_read t (fun r ->
        for _ = 1 to calls do
          match Shmheap.find r key float64 c_layout with
          | Some g ->
              let s = sum (array1_of_genarray g) in
              if s <> want then failwith "find: wrong sum";
              sink := !sink +. s
          | None -> failwith "find: absent"
        done);
    Gc.minor ();
    Unix.gettimeofday () -. t0

(* Runs [body] against a writer that Marshals [a] into a pipe forever. *)
let with_marshal_writer (a : f64) body =
  let rd, wr = Unix.pipe () in
  match Unix.fork () with
  | 0 ->
      Unix.close rd;
      let oc = Unix.out_channel_of_descr wr in
      (try
         while true do
           Marshal.to_channel oc a [];
           flush oc
         done
       with _ -> ());
      Unix._exit 0
  | pid ->
      Unix.close wr;
      let ic = Unix.in_channel_of_descr rd in
      let r = body ic in
      close_in ic;
      (* The writer dies of SIGPIPE or EPIPE. *)
      ignore (Unix.waitpid [] pid : int * Unix.process_status);
      r

let marshal_route n ic =
  let want = expected n in
  fun () ->
    let (a : f64) = Marshal.from_channel ic in
    let s = sum a in
    if s <> want then failwith "marshal: wrong sum";
    sink := !sink +. s

let map_file_route path n =
  let want = expected n in
  fun () ->
    let fd = Unix.openfile path [ Unix.O_RDONLY ] 0 in
    let g = Unix.map_file fd float64 c_layout false [| n |] in
    Unix.close fd;
    let s = sum (array1_of_genarray g) in
    if s <> want then failwith "map_file: wrong sum";
    sink := !sink +. s

let write_file path (a : f64) =
  let fd = Unix.openfile path [ Unix.O_RDWR; Unix.O_CREAT; Unix.O_TRUNC ] 0o600 in
  let m = Unix.map_file fd float64 c_layout true [| Array1.dim a |] in
  Genarray.blit (genarray_of_array1 a) m;
  Unix.close fd

let ns s = s *. 1e9

let pretty_ns s =
  let v = ns s in
  if v >= 1e6 then Printf.sprintf "%.2f ms" (v /. 1e6)
  else if v >= 1e3 then Printf.sprintf "%.1f µs" (v /. 1e3)
  else Printf.sprintf "%.0f ns" v

let () =
  let cpp = Hashtbl.create 3 in
  let rec args = function
    | "--cpp" :: spec :: rest ->
        (match String.split_on_char ':' spec with
        | [ n; cpp_ns; cabi_ns ] ->
            Hashtbl.replace cpp (int_of_string n)
              (float_of_string cpp_ns *. 1e-9, float_of_string cabi_ns *. 1e-9)
        | _ -> failwith ("--cpp N:CPP_NS:CABI_NS, got " ^ spec));
        args rest
    | [] -> ()
    | a :: _ -> failwith ("bench: unknown argument " ^ a)
  in
  args (List.tl (Array.to_list Sys.argv));
  let load =
    try
      let ic = open_in "/proc/loadavg" in
      let l = input_line ic in
      close_in ic;
      l
    with _ -> "?"
  in
  Printf.printf "OCaml %s, %d CPUs online, load average %s\n\n%!" Sys.ocaml_version
    (try int_of_string (String.trim (input_line (Unix.open_process_in "nproc"))) with _ -> 0)
    load;
  let t =
    Shmheap.create
      ~options:{ (Shmheap.default_options ()) with heap_bytes = 4 lsl 30; table_slots_log2 = 19 }
      ()
  in
  let dir = Filename.get_temp_dir_name () in
  Printf.printf
    "| size | shmheap get | with_read + find | find (one scope) | Marshal pipe | map_file | Marshal ÷ get | map_file ÷ get | C ABI get | OCaml − C ABI | OCaml − C++ | add | add GB/s |\n";
  Printf.printf "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n%!";
  List.iter
    (fun (label, n) ->
      let a = make n in
      let key = "get:" ^ string_of_int n in
      ignore (Shmheap.add t key (genarray_of_array1 a) : bool);
      c_setup n;
      let get, find, scoped, cabi =
        match
          measure_routes ~cap:(1 lsl 17)
            [
              ocaml_batch (get_route t key n);
              ocaml_batch (find_route t key n);
              scoped_find_batch t key n;
              c_get n;
            ]
        with
        | [ get; find; scoped; cabi ] -> (get, find, scoped, cabi)
        | _ -> assert false
      in
      let marshal = with_marshal_writer a (fun ic -> measure (marshal_route n ic)) in
      let path = Filename.concat dir (Printf.sprintf "shmheap-bench-%d-%d.f64" (Unix.getpid ()) n) in
      write_file path a;
      let map_file = measure ~cap:20_000 (map_file_route path n) in
      Sys.remove path;
      (* add: distinct keys in a batch; removed and collected between. *)
      let added = ref [] in
      let counter = ref 0 in
      let add () =
        incr counter;
        let k = Printf.sprintf "add:%d:%d" n !counter in
        ignore (Shmheap.add t k (genarray_of_array1 a) : bool);
        added := k :: !added
      in
      let cleanup () =
        List.iter (fun k -> ignore (Shmheap.remove t k : bool)) !added;
        added := [];
        ignore (Shmheap.collect t : Shmheap.gc_report)
      in
      (* At most 1 GiB or 2^14 keys a batch (the table has 2^19 slots). *)
      let add_s = measure ~cap:(max 1 (min (1 lsl 14) ((1 lsl 30) / (8 * n)))) ~after_batch:cleanup add in
      cleanup ();
      let signed d = (if d < 0. then "−" else "+") ^ pretty_ns (Float.abs d) in
      let over_cpp =
        match Hashtbl.find_opt cpp n with
        | Some (cpp_s, cabi_s) -> signed (get -. cabi +. (cabi_s -. cpp_s))
        | None -> "–"
      in
      Printf.printf "| %s | %s | %s | %s | %s | %s | %.1f× | %.1f× | %s | %s | %s | %s | %.2f |\n%!"
        label (pretty_ns get) (pretty_ns find) (pretty_ns scoped) (pretty_ns marshal) (pretty_ns map_file)
        (marshal /. get) (map_file /. get) (pretty_ns cabi) (signed (get -. cabi)) over_cpp
        (pretty_ns add_s)
        (float_of_int (8 * n) /. add_s /. 1e9))
    sizes;
  Shmheap.close t;
  if !sink = 42. then print_newline ()
