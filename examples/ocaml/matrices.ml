(* The seed's scenario: a writer process publishes float64 matrices into a
   heap, forked readers sum every one of them in place. Then the same data
   the way it is sent today: the writer Marshals every matrix to every
   reader over a pipe. Both routes' readers must get the same sums, equal
   to the sums computed here; the exit status says whether they did.

     ./bazelw run //examples/ocaml:matrices -- [--readers N] [--matrices M] [--dim D] *)

open Bigarray

type matrix = (float, float64_elt, c_layout) Array2.t

let matrix i dim : matrix =
  Array2.init float64 c_layout dim dim (fun r c -> float_of_int ((i * 7) + (r * dim) + c) /. 1024.)

(* Reads every element where it lies. *)
let sum (m : matrix) =
  let s = ref 0. in
  for r = 0 to Array2.dim1 m - 1 do
    for c = 0 to Array2.dim2 m - 1 do
      s := !s +. Array2.unsafe_get m r c
    done
  done;
  !s

let key i = "matrix:" ^ string_of_int i

(* Forks [f], which returns a float sent back over a pipe. *)
let spawn f =
  let rd, wr = Unix.pipe () in
  match Unix.fork () with
  | 0 ->
      Unix.close rd;
      let code =
        match f () with
        | s ->
            let oc = Unix.out_channel_of_descr wr in
            Printf.fprintf oc "%h\n" s;
            close_out oc;
            0
        | exception e ->
            prerr_endline (Printexc.to_string e);
            1
      in
      Unix._exit code
  | pid ->
      Unix.close wr;
      (pid, rd)

let collect (pid, rd) =
  let ic = Unix.in_channel_of_descr rd in
  let line = try Some (input_line ic) with End_of_file -> None in
  close_in ic;
  match (Unix.waitpid [] pid, line) with
  | (_, Unix.WEXITED 0), Some l -> Some (float_of_string l)
  | _ -> None

(* The matrices are computed before either route starts (the writer
   inherits them by fork), so both time the transport and the reading. *)
let via_shmheap ~readers ~data =
  let matrices = Array.length data and dim = Array2.dim1 data.(0) in
  let bytes = matrices * dim * dim * 8 in
  let heap =
    Shmheap.create
      ~options:{ (Shmheap.default_options ()) with heap_bytes = (2 * bytes) + (64 lsl 20) }
      ()
  in
  let t0 = Unix.gettimeofday () in
  (* The writer builds each matrix straight in the heap. *)
  let writer =
    spawn (fun () ->
        for i = 0 to matrices - 1 do
          let b = Shmheap.reserve heap (key i) float64 c_layout [| dim; dim |] in
          Array2.blit data.(i) (array2_of_genarray (Shmheap.builder_data b));
          ignore (Shmheap.publish b : bool)
        done;
        0.)
  in
  ignore (collect writer : float option);
  let t_published = Unix.gettimeofday () in
  let children =
    List.init readers (fun _ ->
        spawn (fun () ->
            Shmheap.with_read heap (fun r ->
                let total = ref 0. in
                for i = 0 to matrices - 1 do
                  match Shmheap.find r (key i) float64 c_layout with
                  | Some m -> total := !total +. sum (array2_of_genarray m)
                  | None -> failwith ("absent: " ^ key i)
                done;
                !total)))
  in
  let sums = List.map collect children in
  let t1 = Unix.gettimeofday () in
  Shmheap.close heap;
  (t_published -. t0, t1 -. t_published, sums)

let via_marshal ~readers ~data =
  let matrices = Array.length data in
  let t0 = Unix.gettimeofday () in
  let pipes = List.init readers (fun _ -> Unix.pipe ()) in
  let children =
    List.map
      (fun (rd, wr) ->
        spawn (fun () ->
            Unix.close wr;
            let ic = Unix.in_channel_of_descr rd in
            let total = ref 0. in
            for _ = 1 to matrices do
              let (m : matrix) = Marshal.from_channel ic in
              total := !total +. sum m
            done;
            !total))
      pipes
  in
  List.iter (fun (rd, _) -> Unix.close rd) pipes;
  (* The writer sends every matrix to every reader. *)
  let writer =
    spawn (fun () ->
        let ocs = List.map (fun (_, wr) -> Unix.out_channel_of_descr wr) pipes in
        Array.iter (fun m -> List.iter (fun oc -> Marshal.to_channel oc m []; flush oc) ocs) data;
        List.iter close_out ocs;
        0.)
  in
  List.iter (fun (_, wr) -> Unix.close wr) pipes;
  let sums = List.map collect children in
  ignore (collect writer : float option);
  (Unix.gettimeofday () -. t0, sums)

let () =
  let readers = ref 8 and matrices = ref 16 and dim = ref 512 in
  Arg.parse
    [
      ("--readers", Arg.Set_int readers, "N  forked readers (8)");
      ("--matrices", Arg.Set_int matrices, "M  matrices (16)");
      ("--dim", Arg.Set_int dim, "D  each matrix is D x D float64 (512)");
    ]
    (fun a -> raise (Arg.Bad a))
    "matrices: a writer publishes float64 matrices, forked readers sum them";
  let readers = !readers and matrices = !matrices and dim = !dim in
  let data = Array.init matrices (fun i -> matrix i dim) in
  let want = Array.fold_left (fun s m -> s +. sum m) 0. data in
  let agree sums = List.for_all (fun s -> s = Some want) sums in
  Printf.printf "%d readers, %d float64 matrices of %dx%d (%.1f MiB in all)\n%!" readers matrices
    dim dim
    (float_of_int (matrices * dim * dim * 8) /. 1048576.);
  let publish, read, sums = via_shmheap ~readers ~data in
  Printf.printf
    "shmheap: the writer published in %.1f ms; the readers summed in place in %.1f ms; %s\n%!"
    (publish *. 1e3) (read *. 1e3)
    (if agree sums then Printf.sprintf "every sum = %.6g, as expected" want else "SUMS DIFFER");
  let marshal, msums = via_marshal ~readers ~data in
  Printf.printf "Marshal over pipes: the writer sent, the readers received and summed in %.1f ms; %s\n"
    (marshal *. 1e3)
    (if agree msums then "sums agree" else "SUMS DIFFER");
  Printf.printf "Marshal / shmheap (write + read): %.1fx\n" (marshal /. (publish +. read));
  exit (if agree sums && agree msums then 0 else 1)
