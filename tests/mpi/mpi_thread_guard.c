/* mpi_thread_guard.c: a library for LD_PRELOAD (through the MPI profiling interface) that
 * reports MPI calls made by a thread other than the one that initialised MPI, when MPI was
 * initialised below MPI_THREAD_MULTIPLE (ringworld asks for MPI_THREAD_FUNNELED: such a call is
 * erroneous, whatever it happens to do). Each violation prints one line starting with
 * "mpi_thread_guard: VIOLATION" to stderr; the call then proceeds. MPI_Init_thread prints
 * "mpi_thread_guard: active" so a test can tell the guard was loaded. Covers the calls a
 * helper thread of ringworld could reach: ending the job, the rank queries, the ring's tests
 * and waits, and the collectives a watchdog or an OpenMP worker must never enter. Not thread
 * safe beyond what it checks (it only reads what the main thread wrote before any other
 * thread existed). */
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>

static pthread_t g_main;
static int g_provided = -1;

static void check(const char* call) {
  if (g_provided < 0 || g_provided >= MPI_THREAD_MULTIPLE || pthread_equal(pthread_self(), g_main)) return;
  fprintf(stderr, "mpi_thread_guard: VIOLATION: %s called from a thread other than MPI's main thread (thread level %d)\n",
          call, g_provided);
  fflush(stderr);
}

int MPI_Init_thread(int* argc, char*** argv, int required, int* provided) {
  const int rc = PMPI_Init_thread(argc, argv, required, provided);
  g_main = pthread_self();
  g_provided = *provided;
  fprintf(stderr, "mpi_thread_guard: active (thread level %d)\n", g_provided);
  fflush(stderr);
  return rc;
}

int MPI_Abort(MPI_Comm comm, int code) {
  check("MPI_Abort");
  return PMPI_Abort(comm, code);
}

int MPI_Comm_rank(MPI_Comm comm, int* rank) {
  check("MPI_Comm_rank");
  return PMPI_Comm_rank(comm, rank);
}

int MPI_Comm_size(MPI_Comm comm, int* size) {
  check("MPI_Comm_size");
  return PMPI_Comm_size(comm, size);
}

int MPI_Test(MPI_Request* request, int* flag, MPI_Status* status) {
  check("MPI_Test");
  return PMPI_Test(request, flag, status);
}

int MPI_Testall(int count, MPI_Request requests[], int* flag, MPI_Status statuses[]) {
  check("MPI_Testall");
  return PMPI_Testall(count, requests, flag, statuses);
}

int MPI_Wait(MPI_Request* request, MPI_Status* status) {
  check("MPI_Wait");
  return PMPI_Wait(request, status);
}

int MPI_Barrier(MPI_Comm comm) {
  check("MPI_Barrier");
  return PMPI_Barrier(comm);
}

int MPI_Allreduce(const void* send, void* recv, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
  check("MPI_Allreduce");
  return PMPI_Allreduce(send, recv, count, type, op, comm);
}

int MPI_Finalize(void) {
  check("MPI_Finalize");
  return PMPI_Finalize();
}
