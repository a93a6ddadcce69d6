(* The OCaml binding's tests.

   What they prove:
   - every Bigarray kind (13) in both layouts with 0, 1, 2, 3 and 16
     dimensions goes into a heap and comes back from [get] (and [find]) with
     its kind, layout, dims and every element, zero-copy: the returned
     array's data lies inside the heap's mapping;
   - a kind or layout mismatch is [Error (EINVALID, _)] naming both, never a
     reinterpretation (int against int64, which have the same size, too);
   - writes: add is write-once, replace, remove, mem, move, reserve /
     builder_data / publish / discard, the Hashed variants, collisions;
   - the pin: an array from [get] blocks [collect] in its own process with a
     message that counts it and names Gc.full_major; arrays dropped without
     release are finalised by the GC on its own before they pile up; sub_left, slice_left,
     reshape and change_layout keep the pin after the original is dropped or
     released; once they are unreachable, Gc.full_major () drops it and
     collect runs; with_read empties its arrays at its end and keeps the pin
     only for derived arrays still alive; close leaves arrays readable;
   - forked readers (8, half through with_read, half through get and
     release, one of which holds its arrays for a while) check every element
     of every array they read while the master replaces values and collects
     concurrently: no element is ever seen out of place, collections run
     and move blobs, and a collection waits for a reader that holds a pin;
     a reader that holds one past the deadline makes collect fail with
     EDEADLINE and change nothing;
   - named and file heaps, stats, verify, Marshal of an array in place.
   Every check that fails prints its name; the last line counts them. *)

open Bigarray

let passed = ref 0
let failed = ref 0

let check name ok =
  if ok then incr passed
  else (
    incr failed;
    Printf.printf "FAIL: %s\n%!" name)

let test name f =
  try f ()
  with e ->
    incr failed;
    Printf.printf "FAIL: %s raised %s\n%!" name (Printexc.to_string e)

(* f () raises Error (code, m) with m containing every one of [says]. *)
let contains s sub =
  let n = String.length sub in
  let rec go i = i + n <= String.length s && (String.sub s i n = sub || go (i + 1)) in
  go 0

let raises ?(says = []) name code f =
  match f () with
  | _ -> check (name ^ ": no error") false
  | exception Shmheap.Error (c, m) ->
      check
        (Printf.sprintf "%s: want %s, got %s (%s)" name
           (Shmheap.string_of_code code) (Shmheap.string_of_code c) m)
        (c = code && List.for_all (contains m) says)

let small_options () =
  {
    (Shmheap.default_options ()) with
    heap_bytes = 256 lsl 20;
    table_slots_log2 = 12;
  }

(* ---- kinds ---- *)

type kind = K : ('a, 'b) Bigarray.kind * string -> kind

let kinds =
  [
    K (float32, "float32"); K (float64, "float64");
    K (int8_signed, "int8_signed"); K (int8_unsigned, "int8_unsigned");
    K (int16_signed, "int16_signed"); K (int16_unsigned, "int16_unsigned");
    K (int32, "int32"); K (int64, "int64"); K (int, "int");
    K (nativeint, "nativeint"); K (complex32, "complex32");
    K (complex64, "complex64"); K (char, "char");
  ]

(* Element i of the test array of a kind: distinct, and exact in it. *)
let element : type a b. (a, b) Bigarray.kind -> int -> a =
 fun k i ->
  match k with
  | Float32 -> float_of_int (i * 3) +. 0.5
  | Float64 -> float_of_int (i * 7) +. 0.25
  | Int8_signed -> (i * 5 land 255) - 128
  | Int8_unsigned -> i * 5 land 255
  | Int16_signed -> (i * 331 land 0xffff) - 32768
  | Int16_unsigned -> i * 331 land 0xffff
  | Int32 -> Int32.of_int ((i * 100_003) - 7)
  | Int64 -> Int64.(add (shift_left (of_int i) 40) (of_int (i + 1)))
  | Int -> (i lsl 40) + i + 1
  | Nativeint -> Nativeint.(add (shift_left (of_int i) 33) (of_int (-i)))
  | Complex32 -> { Complex.re = float_of_int i; im = float_of_int (-i) -. 0.5 }
  | Complex64 -> { Complex.re = float_of_int (i * 11); im = 0.125 }
  | Char -> Char.chr (i * 7 land 255)

let numel dims = Array.fold_left ( * ) 1 dims

let flat a = reshape_1 a (numel (Genarray.dims a))

let make : type a b c. (a, b) Bigarray.kind -> c Bigarray.layout -> int array -> (a, b, c) Genarray.t =
 fun k layout dims ->
  let a = Genarray.create k layout dims in
  (match layout with
  | C_layout ->
      let f = flat a in
      for i = 0 to Array1.dim f - 1 do
        Array1.set f i (element k i)
      done
  | Fortran_layout ->
      let f = flat a in
      for i = 1 to Array1.dim f do
        Array1.set f i (element k (i - 1))
      done);
  a

let all_elements_are : type a b c. (a, b) Bigarray.kind -> (a, b, c) Genarray.t -> bool =
 fun k a ->
  match Genarray.layout a with
  | C_layout ->
      let f = flat a in
      let ok = ref true in
      for i = 0 to Array1.dim f - 1 do
        if Array1.get f i <> element k i then ok := false
      done;
      !ok
  | Fortran_layout ->
      let f = flat a in
      let ok = ref true in
      for i = 1 to Array1.dim f do
        if Array1.get f i <> element k (i - 1) then ok := false
      done;
      !ok

let inside t a =
  let base, bytes = Shmheap.mapping t in
  let p = Shmheap.address a in
  let n = Nativeint.of_int (Genarray.size_in_bytes a) in
  p >= base && Nativeint.add p n <= Nativeint.add base (Nativeint.of_int bytes)

let dims_for = function
  | 0 -> [||]
  | 1 -> [| 7 |]
  | 2 -> [| 3; 5 |]
  | 3 -> [| 2; 3; 4 |]
  | 16 -> [| 1; 2; 1; 1; 2; 1; 1; 1; 1; 1; 2; 1; 1; 1; 1; 3 |]
  | n -> invalid_arg (string_of_int n)

type layout = L : 'c Bigarray.layout * string -> layout

let layouts = [ L (c_layout, "c"); L (fortran_layout, "fortran") ]

let test_roundtrip () =
  let t = Shmheap.create ~options:(small_options ()) () in
  List.iter
    (fun (K (k, kname)) ->
      List.iter
        (fun (L (layout, lname)) ->
          List.iter
            (fun nd ->
              let name = Printf.sprintf "%s/%s/%dd" kname lname nd in
              test name (fun () ->
                  let dims = dims_for nd in
                  let a = make k layout dims in
                  check (name ^ " add") (Shmheap.add t name a);
                  (match Shmheap.get t name k layout with
                  | None -> check (name ^ " get: absent") false
                  | Some b ->
                      check (name ^ " dims") (Genarray.dims b = dims);
                      check (name ^ " kind") (Genarray.kind b = k);
                      check (name ^ " layout") (Genarray.layout b = layout);
                      check (name ^ " elements") (all_elements_are k b);
                      check (name ^ " equal") (b = a);
                      check (name ^ " zero-copy") (inside t b);
                      check (name ^ " not the source")
                        (Shmheap.address a <> Shmheap.address b);
                      check (name ^ " pinned") (Shmheap.is_pinned b);
                      Shmheap.release b;
                      check (name ^ " released") (not (Shmheap.is_pinned b)));
                  Shmheap.with_read t (fun r ->
                      match Shmheap.find r name k layout with
                      | None -> check (name ^ " find: absent") false
                      | Some b ->
                          check (name ^ " find elements") (all_elements_are k b);
                          check (name ^ " find zero-copy") (inside t b))))
            [ 0; 1; 2; 3; 16 ])
        layouts)
    kinds;
  check "roundtrip: no pins left" (Shmheap.pins t = 0);
  Shmheap.verify t;
  Shmheap.close t

let test_mismatch () =
  let t = Shmheap.create ~options:(small_options ()) () in
  ignore (Shmheap.add t "f64" (make float64 c_layout [| 4 |]) : bool);
  ignore (Shmheap.add t "int" (make int c_layout [| 4 |]) : bool);
  raises "kind" EINVALID ~says:[ "float64"; "float32"; "f64" ] (fun () ->
      Shmheap.get t "f64" float32 c_layout);
  raises "layout" EINVALID ~says:[ "c_layout"; "fortran_layout" ] (fun () ->
      Shmheap.get t "f64" float64 fortran_layout);
  raises "int is not int64" EINVALID ~says:[ "int64" ] (fun () ->
      Shmheap.get t "int" int64 c_layout);
  raises "int is not nativeint" EINVALID (fun () ->
      Shmheap.get t "int" nativeint c_layout);
  Shmheap.with_read t (fun r ->
      raises "find kind" EINVALID (fun () -> Shmheap.find r "f64" int64 c_layout));
  check "mismatch leaves no pin" (Shmheap.pins t = 0);
  Shmheap.close t

let get_exn t key k layout =
  match Shmheap.get t key k layout with
  | Some a -> a
  | None -> failwith ("absent: " ^ key)

let test_writes () =
  let t = Shmheap.create ~options:(small_options ()) () in
  let a = make float64 c_layout [| 2; 3 |] in
  let b = Genarray.init float64 c_layout [| 2; 3 |] (fun i -> float (i.(0) + i.(1)) +. 100.) in
  check "add" (Shmheap.add t "k" a);
  check "add again is false" (not (Shmheap.add t "k" b));
  check "unchanged" (get_exn t "k" float64 c_layout = a);
  check "replace" (Shmheap.replace t "k" b);
  check "replaced" (get_exn t "k" float64 c_layout = b);
  check "replace absent is false" (not (Shmheap.replace t "new" a));
  check "mem" (Shmheap.mem t "k" && not (Shmheap.mem t "absent"));
  check "get absent" (Shmheap.get t "absent" float64 c_layout = None);
  check "remove" (Shmheap.remove t "k");
  check "remove absent" (not (Shmheap.remove t "k"));
  check "removed" (not (Shmheap.mem t "k"));
  Shmheap.move t "new" "moved";
  check "move" (Shmheap.mem t "moved" && not (Shmheap.mem t "new"));
  check "moved value" (get_exn t "moved" float64 c_layout = a);
  raises "move from absent" ENOTFOUND (fun () -> Shmheap.move t "new" "x");
  ignore (Shmheap.add t "other" a : bool);
  raises "move onto present" EEXISTS (fun () -> Shmheap.move t "moved" "other");
  (* Builders. *)
  let bl = Shmheap.reserve t "built" int32 fortran_layout [| 4; 5 |] in
  let d = Shmheap.builder_data bl in
  check "builder_data is the same array" (Shmheap.builder_data bl == d);
  check "builder_data in place" (inside t d);
  for j = 1 to 5 do
    for i = 1 to 4 do
      Genarray.set d [| i; j |] (Int32.of_int ((i * 10) + j))
    done
  done;
  let kept = Genarray.slice_right d [| 5 |] in
  check "publish" (Shmheap.publish bl);
  check "publish empties the data" (Genarray.dims d = [| 0; 0 |]);
  (match Genarray.get d [| 1; 1 |] with
  | _ -> check "emptied array raises" false
  | exception Invalid_argument _ -> check "emptied array raises" true);
  check "a slice of builder_data keeps its pin" (Shmheap.is_pinned kept);
  check "the slice reads the published value"
    (Array1.get (array1_of_genarray kept) 4 = 45l);
  Shmheap.release kept;
  let built = get_exn t "built" int32 fortran_layout in
  check "built" (Genarray.get built [| 4; 5 |] = 45l && Genarray.get built [| 2; 3 |] = 23l);
  raises "publish twice" EPRECONDITION (fun () -> Shmheap.publish bl);
  raises "builder_data after publish" EPRECONDITION (fun () -> Shmheap.builder_data bl);
  let dropped = Shmheap.reserve t "dropped" char c_layout [| 10 |] in
  ignore (Shmheap.builder_data dropped : (char, int8_unsigned_elt, c_layout) Genarray.t);
  Shmheap.discard dropped;
  check "discard" (not (Shmheap.mem t "dropped"));
  raises "reserve bad dims" EINVALID (fun () -> Shmheap.reserve t "neg" float64 c_layout [| -1 |]);
  raises "reserve 17 dims" EINVALID (fun () ->
      Shmheap.reserve t "d17" float64 c_layout (Array.make 17 1));
  (* Hashed keys. *)
  check "hashed add" (Shmheap.Hashed.add t 0x1234L "h" a);
  check "hashed get" (Shmheap.Hashed.get t 0x1234L "h" float64 c_layout = Some a);
  check "hashed mem" (Shmheap.Hashed.mem t 0x1234L "h");
  raises "hashed collision" EEXISTS (fun () -> Shmheap.Hashed.add t 0x1234L "other-key" b);
  check "hashed collision is absent on get"
    (Shmheap.Hashed.get t 0x1234L "other-key" float64 c_layout = None);
  check "hashed trusting the hash" (Shmheap.Hashed.add t 0x777L "" b);
  check "hashed trusted get" (Shmheap.Hashed.get t 0x777L "" float64 c_layout = Some b);
  Shmheap.Hashed.move t (0x1234L, "h") (0x99L, "h2");
  check "hashed move" (Shmheap.Hashed.get t 0x99L "h2" float64 c_layout = Some a);
  check "hashed replace" (Shmheap.Hashed.replace t 0x99L "h2" b);
  Shmheap.with_read t (fun r ->
      check "hashed find" (Shmheap.Hashed.find r 0x99L "h2" float64 c_layout = Some b));
  let hb = Shmheap.Hashed.reserve t 0x55L "hb" int16_unsigned c_layout [| 3 |] in
  Genarray.fill (Shmheap.builder_data hb) 65535;
  check "hashed reserve" (Shmheap.publish hb);
  check "hashed reserved" (Shmheap.Hashed.get t 0x55L "hb" int16_unsigned c_layout
                           = Some (Genarray.init int16_unsigned c_layout [| 3 |] (fun _ -> 65535)));
  check "hashed remove" (Shmheap.Hashed.remove t 0x99L "h2");
  check "hash is nonzero" (Shmheap.hash t "x" <> 0L && Shmheap.hash t "x" = Shmheap.hash t "x");
  (* Marshal copies out: the result is an ordinary array. *)
  let g = get_exn t "moved" float64 c_layout in
  let m : (float, float64_elt, c_layout) Genarray.t = Marshal.from_string (Marshal.to_string g []) 0 in
  check "marshal" (m = a && not (Shmheap.is_pinned m) && not (inside t m));
  (match Shmheap.release a with
  | () -> check "release a foreign array raises" false
  | exception Invalid_argument _ -> check "release a foreign array raises" true);
  Shmheap.release g;
  Shmheap.release g;
  Gc.full_major ();
  check "writes: no pins" (Shmheap.pins t = 0);
  Shmheap.verify t;
  Shmheap.close t

(* Garbage for the collector: values replaced a few times. *)
let churn t n =
  for i = 1 to n do
    ignore (Shmheap.replace t "churn" (make float64 c_layout [| 1000 + i |]) : bool)
  done

(* Keeps the sub-arrays of a pinned array in [keep], checks they read the
   right values; the original is dropped when this returns. *)
let[@inline never] take_sub_arrays t keep keep_fortran =
  let b = get_exn t "pinned" float64 c_layout in
  keep := [ Genarray.sub_left b 1 2; Genarray.slice_left b [| 3 |]; reshape b [| 40 |] ];
  keep_fortran := Some (Genarray.change_layout b fortran_layout)

let[@inline never] hold_in_ref t cell = cell := Some (get_exn t "pinned" float64 c_layout)

let test_pin () =
  let t = Shmheap.create ~options:(small_options ()) () in
  let a = make float64 c_layout [| 4; 10 |] in
  ignore (Shmheap.add t "pinned" a : bool);
  churn t 5;
  let cell = ref None in
  hold_in_ref t cell;
  raises "collect while an array lives" EPRECONDITION
    ~says:[ "1 array(s) from get"; "Gc.full_major" ]
    (fun () -> Shmheap.collect t);
  cell := None;
  Gc.full_major ();
  check "Gc.full_major drops an unreachable array's pin" (Shmheap.pins t = 0);
  let r = Shmheap.collect t in
  check "collect runs once it is dropped" r.ran;
  (* Arrays dropped without release are finalised by the GC on its own:
     each counts against its budget, so they do not pile up. *)
  for _ = 1 to 5000 do
    ignore (Shmheap.get t "pinned" float64 c_layout : (float, float64_elt, c_layout) Genarray.t option)
  done;
  check (Printf.sprintf "the GC finalises dropped arrays by itself (%d of 5000 left)" (Shmheap.pins t))
    (Shmheap.pins t < 2000);
  Gc.full_major ();
  (* Derived arrays keep the pin after the original is gone. *)
  churn t 5;
  let keep = ref [] and keep_fortran = ref None in
  take_sub_arrays t keep keep_fortran;
  Gc.full_major ();
  check "derived arrays keep the pin" (Shmheap.pins t = 1 && List.for_all Shmheap.is_pinned !keep);
  raises "collect while a sub-array lives" EPRECONDITION (fun () -> Shmheap.collect t);
  (match (!keep, !keep_fortran) with
  | [ sub; slice; flat ], Some fortran ->
      check "sub_left" (Genarray.dims sub = [| 2; 10 |] && Genarray.get sub [| 0; 3 |] = element float64 13);
      check "slice_left" (Genarray.get slice [| 9 |] = element float64 39);
      check "reshape" (Genarray.get flat [| 17 |] = element float64 17);
      check "change_layout" (Genarray.get fortran [| 4; 2 |] = element float64 13);
      check "derived zero-copy" (List.for_all (inside t) !keep && inside t fortran);
      (* Releasing some drops nothing while others remain. *)
      Shmheap.release sub;
      Shmheap.release flat;
      check "partial release keeps the pin" (Shmheap.pins t = 1)
  | _ -> check "four derived arrays" false);
  keep := [];
  keep_fortran := None;
  Gc.full_major ();
  check "dropped derived arrays release the pin" (Shmheap.pins t = 0);
  check "collect after the derived arrays go" (Shmheap.collect t).ran;
  (* with_read: its arrays are emptied at its end; a slice that escapes
     keeps the pin until it is dropped. *)
  churn t 5;
  let escaped =
    Shmheap.with_read t (fun r ->
        let b = Option.get (Shmheap.find r "pinned" float64 c_layout) in
        raises "collect inside with_read" EPRECONDITION (fun () -> Shmheap.collect t);
        (b, Genarray.slice_left b [| 1 |]))
  in
  let b, slice = escaped in
  check "with_read empties its arrays" (Genarray.dims b = [| 0; 0 |] && not (Shmheap.is_pinned b));
  check "an escaped slice keeps the scope's pin" (Shmheap.pins t = 1 && Shmheap.is_pinned slice);
  check "the escaped slice reads its values" (Genarray.get slice [| 2 |] = element float64 12);
  Shmheap.release slice;
  check "with_read's pin ends with its last array" (Shmheap.pins t = 0);
  check "collect after with_read" (Shmheap.collect t).ran;
  let no_escape = Shmheap.with_read t (fun r -> Shmheap.find r "pinned" float64 c_layout) in
  check "with_read without escapes ends its pin" (Shmheap.pins t = 0 && no_escape <> None);
  let r = Shmheap.with_read t (fun r -> r) in
  raises "find after the scope" EPRECONDITION (fun () -> Shmheap.find r "pinned" float64 c_layout);
  (match Shmheap.with_read t (fun _ -> failwith "inside") with
  | () -> ()
  | exception Failure _ -> check "with_read ends on an exception" (Shmheap.pins t = 0));
  (* An unpublished builder pins. *)
  let bl = Shmheap.reserve t "b" float64 c_layout [| 3 |] in
  raises "collect with a builder" EPRECONDITION ~says:[ "1 unpublished builder" ] (fun () ->
      Shmheap.collect t);
  Shmheap.discard bl;
  ignore (Shmheap.collect t : Shmheap.gc_report);
  (* close leaves arrays readable; later calls raise. *)
  let v = get_exn t "pinned" float64 c_layout in
  Shmheap.close t;
  check "an array outlives close" (all_elements_are float64 v);
  raises "get after close" EPRECONDITION ~says:[ "closed" ] (fun () ->
      Shmheap.get t "pinned" float64 c_layout);
  Shmheap.close t;
  Shmheap.release v

(* ---- forked readers under a concurrent collector ---- *)

let n_readers = 8
let n_keys = 24
let n_elems = 4096

(* Element j of key k at version v; element 0 holds v itself. *)
let value k v j = if j = 0 then float_of_int v else float_of_int ((k * 1_000_003) + (v * 7919) + j)

let versioned k v =
  let a = Array1.create float64 c_layout n_elems in
  for j = 0 to n_elems - 1 do
    a.{j} <- value k v j
  done;
  genarray_of_array1 a

(* Every element of [a] agrees with the version in its element 0. *)
let consistent k a =
  let a = array1_of_genarray a in
  let v = int_of_float a.{0} in
  let ok = ref (Array1.dim a = n_elems) in
  for j = 1 to Array1.dim a - 1 do
    if a.{j} <> value k v j then ok := false
  done;
  (!ok, v)

let key k = "reader-key-" ^ string_of_int k

(* A reader: until "stop" appears, reads every key and checks every
   element; writes "<arrays checked> <bad> <max version>" to [fd]. *)
let reader t index fd =
  let checked = ref 0 and bad = ref 0 and max_version = ref 0 in
  let note k a =
    let ok, v = consistent k a in
    incr checked;
    if not ok then incr bad;
    if v > !max_version then max_version := v
  in
  let round = ref 0 in
  while not (Shmheap.mem t "stop") do
    incr round;
    if index mod 2 = 0 then
      Shmheap.with_read t (fun r ->
          for k = 0 to n_keys - 1 do
            Option.iter (note k) (Shmheap.find r (key k) float64 c_layout)
          done)
    else
      for k = 0 to n_keys - 1 do
        match Shmheap.get t (key k) float64 c_layout with
        | None -> ()
        | Some a ->
            (* Reader 1 holds some arrays a while: collect must wait. *)
            if index = 1 && k = 0 && !round mod 4 = 0 then Unix.sleepf 0.05;
            note k a;
            Shmheap.release a
      done
  done;
  let msg = Printf.sprintf "%d %d %d\n" !checked !bad !max_version in
  ignore (Unix.write_substring fd msg 0 (String.length msg) : int);
  Unix._exit 0

let test_forked_readers () =
  let t = Shmheap.create ~options:(small_options ()) () in
  for k = 0 to n_keys - 1 do
    ignore (Shmheap.replace t (key k) (versioned k 0) : bool)
  done;
  let children =
    List.init n_readers (fun i ->
        let rd, wr = Unix.pipe () in
        match Unix.fork () with
        | 0 ->
            Unix.close rd;
            reader t i wr
        | pid ->
            Unix.close wr;
            (pid, rd))
  in
  let rounds = 30 and ran = ref 0 and moved = ref 0 and deadlines = ref 0 in
  let waited = ref 0.0 in
  for round = 1 to rounds do
    (* Half the keys get a new version: the old blobs become garbage, so
       the collector slides the live ones down under the readers. *)
    for k = 0 to n_keys - 1 do
      if (k + round) mod 2 = 0 then ignore (Shmheap.replace t (key k) (versioned k round) : bool)
    done;
    match Shmheap.collect ~deadline_ms:5000 t with
    | r ->
        if r.ran then incr ran;
        moved := !moved + r.blobs_moved;
        waited := !waited +. r.handshake_seconds
    | exception Shmheap.Error (EDEADLINE, _) -> incr deadlines
  done;
  Shmheap.verify t;
  ignore (Shmheap.add t "stop" (versioned 0 0) : bool);
  let results =
    List.map
      (fun (pid, rd) ->
        let ic = Unix.in_channel_of_descr rd in
        let line = try input_line ic with End_of_file -> "" in
        close_in ic;
        let _, status = Unix.waitpid [] pid in
        (line, status))
      children
  in
  List.iteri
    (fun i (line, status) ->
      check (Printf.sprintf "reader %d exited 0" i) (status = Unix.WEXITED 0);
      match String.split_on_char ' ' line with
      | [ checked; bad; max_version ] ->
          check (Printf.sprintf "reader %d checked arrays (%s)" i checked) (int_of_string checked > 0);
          check (Printf.sprintf "reader %d saw every element in place (%s bad)" i bad) (bad = "0");
          check (Printf.sprintf "reader %d saw new versions (%s)" i max_version)
            (int_of_string max_version > 0)
      | _ -> check (Printf.sprintf "reader %d reported (%S)" i line) false)
    results;
  Printf.printf "forked readers: %d rounds, %d collections ran, %d blobs moved, %d deadlines, %.3f s waiting for readers\n%!"
    rounds !ran !moved !deadlines !waited;
  check "collections ran under the readers" (!ran >= rounds / 2);
  check "collections moved blobs under the readers" (!moved > 0);
  (* Every value is the latest version. *)
  for k = 0 to n_keys - 1 do
    let a = get_exn t (key k) float64 c_layout in
    let ok, _ = consistent k a in
    check (Printf.sprintf "final value %d" k) ok;
    Shmheap.release a
  done;
  Shmheap.close t

(* A reader that keeps a pin past the deadline: collect gives up and
   changes nothing; the reader's data never moved. *)
let test_deadline () =
  let t = Shmheap.create ~options:(small_options ()) () in
  ignore (Shmheap.add t "held" (versioned 5 1) : bool);
  churn t 5;
  let rd, wr = Unix.pipe () in
  let go_rd, go_wr = Unix.pipe () in
  match Unix.fork () with
  | 0 ->
      Unix.close rd;
      Unix.close go_wr;
      let a = get_exn t "held" float64 c_layout in
      let address = Shmheap.address a in
      ignore (Unix.write_substring wr "p" 0 1 : int);
      (* Hold the pin until the parent's collect has given up. *)
      ignore (Unix.read go_rd (Bytes.create 1) 0 1 : int);
      let ok, _ = consistent 5 a in
      let code = if ok && Shmheap.address a = address then 0 else 1 in
      Shmheap.release a;
      Unix._exit code
  | pid ->
      Unix.close wr;
      Unix.close go_rd;
      ignore (Unix.read rd (Bytes.create 1) 0 1 : int);
      let before = Shmheap.stats t in
      let t0 = Unix.gettimeofday () in
      raises "collect past a pinned reader's deadline" EDEADLINE (fun () ->
          Shmheap.collect ~deadline_ms:300 t);
      check "collect waited for its deadline" (Unix.gettimeofday () -. t0 >= 0.25);
      check "a failed collect changed nothing" ((Shmheap.stats t).heap_top = before.heap_top);
      ignore (Unix.write_substring go_wr "g" 0 1 : int);
      let _, status = Unix.waitpid [] pid in
      check "the pinned reader's data never moved" (status = Unix.WEXITED 0);
      check "collect after the reader leaves" (Shmheap.collect t).ran;
      Shmheap.close t

(* ---- named and file heaps, stats ---- *)

let test_named_and_files () =
  let name = Printf.sprintf "shmheap-ocaml-test-%d" (Unix.getpid ()) in
  (try Shmheap.unlink_named name with Shmheap.Error _ -> ());
  let t = Shmheap.create_named ~options:(small_options ()) name in
  raises "create_named twice" EEXISTS (fun () -> Shmheap.create_named name);
  ignore (Shmheap.add t "n" (make int16_signed fortran_layout [| 3; 3 |]) : bool);
  (match Unix.fork () with
  | 0 ->
      let code =
        try
          let u = Shmheap.open_named name in
          let a = get_exn u "n" int16_signed fortran_layout in
          if all_elements_are int16_signed a && inside u a then 0 else 1
        with _ -> 2
      in
      Unix._exit code
  | pid ->
      let _, status = Unix.waitpid [] pid in
      check "open_named from another process" (status = Unix.WEXITED 0));
  Shmheap.unlink_named name;
  raises "open_named after unlink" ENOTFOUND (fun () -> Shmheap.open_named name);
  raises "unlink twice" ENOTFOUND (fun () -> Shmheap.unlink_named name);
  raises "a NUL in a name" EINVALID (fun () -> Shmheap.open_named "a\000b");
  Shmheap.close t;
  let path = Filename.concat (Filename.get_temp_dir_name ()) (name ^ ".heap") in
  (try Sys.remove path with Sys_error _ -> ());
  let f = Shmheap.create_file ~options:(small_options ()) path in
  ignore (Shmheap.add f "persisted" (make complex64 c_layout [| 5 |]) : bool);
  raises "create_file twice" EEXISTS (fun () -> Shmheap.create_file path);
  Shmheap.close f;
  let g = Shmheap.open_file path in
  let a = get_exn g "persisted" complex64 c_layout in
  check "a file heap maps back" (all_elements_are complex64 a && inside g a);
  Shmheap.release a;
  let s = Shmheap.stats g in
  check "stats" (s.live_blobs = 1 && s.table_slots = 1 lsl 12 && s.sessions >= 1);
  Shmheap.close g;
  Sys.remove path;
  raises "open_file of a missing file" ENOTFOUND (fun () -> Shmheap.open_file path);
  raises "bad options" EINVALID (fun () ->
      Shmheap.create ~options:{ (small_options ()) with table_slots_log2 = 99 } ());
  let m = Shmheap.create ~options:(small_options ()) () in
  check "maybe_collect with nothing to do" (not (Shmheap.maybe_collect m).ran);
  raises "maybe_collect with a negative overhead" EINVALID (fun () ->
      Shmheap.maybe_collect ~overhead:(-1.) m);
  Shmheap.close m

let () =
  test "roundtrip" test_roundtrip;
  test "mismatch" test_mismatch;
  test "writes" test_writes;
  test "pin" test_pin;
  test "forked readers" test_forked_readers;
  test "deadline" test_deadline;
  test "named and files" test_named_and_files;
  Printf.printf "%d passed, %d failed\n" !passed !failed;
  exit (if !failed = 0 then 0 else 1)
