(* A user's program built by dune against the installed package: a forked
   worker publishes a matrix, the parent reads it in place. *)
open Bigarray

let () =
  let heap = Shmheap.create () in
  (match Unix.fork () with
  | 0 ->
      let m = Genarray.init float64 c_layout [| 100; 10 |] (fun i -> float ((i.(0) * 10) + i.(1))) in
      ignore (Shmheap.add heap "matrix" m : bool);
      exit 0
  | pid -> ignore (Unix.waitpid [] pid : int * Unix.process_status));
  match Shmheap.get heap "matrix" float64 c_layout with
  | None -> print_endline "matrix: absent"; exit 1
  | Some m ->
      let flat = reshape_1 m 1000 in
      let sum = ref 0.0 in
      for i = 0 to 999 do
        sum := !sum +. flat.{i}
      done;
      let base, bytes = Shmheap.mapping heap in
      let p = Shmheap.address m in
      let in_place = p >= base && Nativeint.(sub p base < of_int bytes) in
      Printf.printf "matrix %dx%d from the worker: sum %.0f, read in place: %b\n"
        (Genarray.nth_dim m 0) (Genarray.nth_dim m 1) !sum in_place
